// Command telegate is the secure edge gateway for telemedicine.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := serve(context.Background(), nil, serveOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
