package session

import "time"

// t0 is the arbitrary origin of test clocks.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at returns t0 + ms milliseconds.
func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
