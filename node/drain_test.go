package node

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/media"
)

// TestDrainMarksRelayInRedis: a node with visits on Redis registers its
// relay (its turn: URL at visits.ice_host, not draining); POST /drain on
// its admin listener answers 202 and marks the registration draining in
// Redis, and the node exits cleanly, its relay still registered as
// draining (no visit is given it until the registration lapses).
func TestDrainMarksRelayInRedis(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	cfg := nodeConfigWith(t, rdb, "visits:\n  enabled: true\n  ice_host: 127.0.0.1\n")
	r, wait := runNode(t, cfg)
	c := rdb.Client(t)
	registration := func() (urls []string, draining bool) {
		t.Helper()
		keys, err := c.Keys(context.Background(), "*relay:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		var regs []string
		for _, k := range keys {
			if !strings.Contains(k, "vrelay:") {
				regs = append(regs, k)
			}
		}
		if len(regs) != 1 {
			t.Fatalf("relay registrations in Redis: %v, want one", keys)
		}
		v, err := c.Get(context.Background(), regs[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(v, "turn:") || strings.Contains(v, "draining") {
			t.Fatalf("the registration is in the clear: %q", v)
		}
		var o media.Options
		if err := visitsOnRedis(cfg, &o); err != nil {
			t.Fatal(err)
		}
		urls, _, draining, err = media.RelayRegistration(o.InviteKey, v)
		if err != nil {
			t.Fatalf("the registration does not open with the visits' key: %v", err)
		}
		return urls, draining
	}
	urls, draining := registration()
	if draining || len(urls) == 0 || !strings.HasPrefix(urls[0], "turn:127.0.0.1:") {
		t.Fatalf("registration before the drain: %v draining %v", urls, draining)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+r.AdminAddr+"/drain", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /drain: %d", resp.StatusCode)
	}
	if _, draining := registration(); !draining {
		t.Error("the relay is not marked draining in Redis after POST /drain")
	}
	exited := make(chan error, 1)
	go func() { exited <- wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the drained node exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the drained node did not exit")
	}
	if _, draining := registration(); !draining {
		t.Error("the exited node's relay is registered as not draining")
	}
}
