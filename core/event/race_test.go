//go:build race

package event_test

// raceEnabled: under -race sync.Pool drops items at random, so allocation
// counts that rely on a pool are only checked without it.
const raceEnabled = true
