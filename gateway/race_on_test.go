//go:build race

package gateway

// raceEnabled reports a build with the race detector, which makes the
// rule set about ten times slower.
const raceEnabled = true
