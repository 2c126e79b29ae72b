// The open-loop schedule: every intended send time is fixed by the rate alone (k/R, or cumulative
// exponential gaps for Poisson), never by when responses come back. Slots are handed out in order
// at their intended times (main.go's dispatcher); a slot no worker is free for goes out late, as
// soon as one is, with no catch-up skipping and no rate reduction: after a stall the queue drains
// as fast as the connections allow, and each request's latency is timed from its slot (wrk2's
// coordinated-omission correction).
package main

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Slot is one scheduled request.
type Slot struct {
	K        int64
	Offset   time.Duration // intended send time − t0
	Measured bool          // intended inside the window (after warm-up)
}

// Schedule hands out slots in order until the end of warm-up + window.
type Schedule struct {
	mu       sync.Mutex
	rate     float64
	poisson  bool
	rng      *rand.Rand
	warmup   time.Duration
	end      time.Duration // warm-up + window
	k        int64
	next     time.Duration // poisson: offset of slot k
	accum    float64       // poisson: exact cumulative offset in seconds (no rounding drift)
	measured int64         // slots handed out inside the window
}

func NewSchedule(rate float64, poisson bool, seed uint64, warmup, window time.Duration) *Schedule {
	return &Schedule{rate: rate, poisson: poisson, rng: rand.New(rand.NewPCG(seed, 0x6d622d6c6f6164)), warmup: warmup, end: warmup + window}
}

// Next returns the next slot, or false once the schedule is over.
func (s *Schedule) Next() (Slot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var off time.Duration
	if s.poisson {
		off = s.next
	} else {
		off = time.Duration(float64(s.k) * 1e9 / s.rate)
	}
	if off >= s.end {
		return Slot{}, false
	}
	sl := Slot{K: s.k, Offset: off, Measured: off >= s.warmup}
	if sl.Measured {
		s.measured++
	}
	s.k++
	if s.poisson {
		s.accum += s.rng.ExpFloat64() / s.rate
		s.next = time.Duration(s.accum * 1e9)
	}
	return sl, true
}

// Measured is how many slots inside the window have been handed out so far.
func (s *Schedule) Measured() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.measured
}

// Result holds the three instants of one request.
type Result struct {
	Intended time.Time // the slot's send time
	Sent     time.Time // actual send
	Done     time.Time // response complete
}

// ResponseTime is completion − intended send time (what a user waiting on the schedule sees).
func (r Result) ResponseTime() time.Duration { return r.Done.Sub(r.Intended) }

// ServiceTime is completion − actual send time (what a closed-loop tool reports).
func (r Result) ServiceTime() time.Duration { return r.Done.Sub(r.Sent) }

// SendLag is actual − intended send time.
func (r Result) SendLag() time.Duration { return r.Sent.Sub(r.Intended) }

// sleepUntil waits for the intended send time t. Go's timers can wake up to 1 ms late in an idle
// process (the runtime rounds a sub-millisecond epoll timeout up to 1 ms), which would add ~0.5 ms
// to every response time; so only the wait up to t − 2 ms uses a timer (cancellable), and the rest
// is a nanosleep on this thread with 1 ns timer slack (the default 50 µs slack is not wanted
// either). Returns early when ctx ends.
func sleepUntil(ctx context.Context, t time.Time, timer *time.Timer) {
	if d := time.Until(t) - 2*time.Millisecond; d > 0 {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
	}
	if d := time.Until(t); d > 0 {
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		ts := unix.NsecToTimespec(d.Nanoseconds())
		_ = unix.Nanosleep(&ts, nil)
	}
}
