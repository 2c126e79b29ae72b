package main

import (
	"context"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"meshbench.dev/apps/internal/wire"
)

func TestUniformSpacing(t *testing.T) {
	s := NewSchedule(500, false, 1, time.Second, 2*time.Second)
	var prev time.Duration = -1
	n, measured := 0, 0
	for {
		sl, ok := s.Next()
		if !ok {
			break
		}
		if sl.Offset != time.Duration(sl.K)*2*time.Millisecond {
			t.Fatalf("slot %d at %v, want %v", sl.K, sl.Offset, time.Duration(sl.K)*2*time.Millisecond)
		}
		if prev >= 0 && sl.Offset-prev != 2*time.Millisecond {
			t.Fatalf("gap %v", sl.Offset-prev)
		}
		if sl.Measured != (sl.Offset >= time.Second) {
			t.Fatalf("slot at %v measured=%v", sl.Offset, sl.Measured)
		}
		if sl.Measured {
			measured++
		}
		prev = sl.Offset
		n++
	}
	if n != 1500 || measured != 1000 || s.Measured() != 1000 {
		t.Fatalf("slots %d measured %d (%d), want 1500 and 1000", n, measured, s.Measured())
	}
}

func TestPoissonMeanRate(t *testing.T) {
	const rate = 2000.0
	count := func(seed uint64) (int, []time.Duration) {
		s := NewSchedule(rate, true, seed, 0, 10*time.Second)
		var offs []time.Duration
		for {
			sl, ok := s.Next()
			if !ok {
				return len(offs), offs
			}
			offs = append(offs, sl.Offset)
		}
	}
	n, offs := count(7)
	if got := float64(n) / 10; got < rate*0.97 || got > rate*1.03 {
		t.Fatalf("poisson mean rate %.1f/s, want %v within 3%%", got, rate)
	}
	// Exponential gaps: about e^-1 of them exceed the mean gap (uniform spacing would give 0 or 1).
	long := 0
	for i := 1; i < len(offs); i++ {
		if offs[i] < offs[i-1] {
			t.Fatal("offsets not ascending")
		}
		if offs[i]-offs[i-1] > time.Duration(1e9/rate) {
			long++
		}
	}
	if f := float64(long) / float64(len(offs)-1); f < 0.34 || f > 0.40 {
		t.Fatalf("fraction of gaps above the mean %.3f, want ≈ 0.368", f)
	}
	if n2, _ := count(7); n2 != n {
		t.Fatalf("same seed gave %d then %d slots", n, n2)
	}
	if n3, _ := count(8); n3 == n {
		t.Logf("seeds 7 and 8 gave the same count %d (possible, unlikely)", n)
	}
}

func TestResultTimes(t *testing.T) {
	base := time.Now()
	r := Result{Intended: base, Sent: base.Add(150 * time.Millisecond), Done: base.Add(151 * time.Millisecond)}
	if r.ResponseTime() != 151*time.Millisecond || r.ServiceTime() != time.Millisecond || r.SendLag() != 150*time.Millisecond {
		t.Fatalf("response %v service %v lag %v", r.ResponseTime(), r.ServiceTime(), r.SendLag())
	}
}

// stallTransport answers at once (a sleep of 100 µs can take a millisecond on a busy host, which
// would saturate one connection at 1000/s), except that the first request sent after `at` takes `stall`.
type stallTransport struct {
	start     time.Time
	at, stall time.Duration
	fired     atomic.Bool
}

func (s *stallTransport) Do(ctx context.Context, _ int) (string, bool) {
	if time.Since(s.start) < s.at || !s.fired.CompareAndSwap(false, true) {
		return "200", true
	}
	select {
	case <-time.After(s.stall):
		return "200", true
	case <-ctx.Done():
		return "timeout", false
	}
}
func (s *stallTransport) Close() {}

// One connection, 1000/s, one 200 ms stall: the requests queued behind it are timed from their
// intended send times (response time), not from when the busy connection let them go (service time).
func TestStallShowsInResponseTime(t *testing.T) {
	c := &config{protocol: "http1", rate: 1000, duration: 600 * time.Millisecond, conns: 1, streams: 1, timeout: 2 * time.Second, arrival: "uniform", quiet: true}
	tr := &stallTransport{start: time.Now(), at: 200 * time.Millisecond, stall: 200 * time.Millisecond}
	out := execute(context.Background(), c, tr, io.Discard)
	if out.Actual.Requests != 600 || out.Actual.OK != 600 {
		t.Fatalf("requests %d ok %d, want 600", out.Actual.Requests, out.Actual.OK)
	}
	if *out.Response.Max < 190_000 {
		t.Fatalf("response max %d µs, want ≥ 190 ms", *out.Response.Max)
	}
	// Only the stalled request itself has a long service time; ~100 queued ones have long response times.
	over := func(s Summary, us int64) (n int64) {
		for _, b := range s.Histogram {
			if b.LeUs > us {
				n += b.Count
			}
		}
		return n
	}
	if n := over(out.Service, 100_000); n != 1 {
		t.Fatalf("%d service times > 100 ms, want 1", n)
	}
	if n := over(out.Response, 100_000); n < 90 || n > 200 { // ≈ 100; more only if the host holds this process off the CPU
		t.Fatalf("%d response times > 100 ms, want ≈ 100 (rate × (stall − 100 ms))", n)
	}
	if *out.Service.P99 > 50_000 || *out.Response.P99 < 100_000 {
		t.Fatalf("service p99 %d µs, response p99 %d µs", *out.Service.P99, *out.Response.P99)
	}
}

// A target that never answers: the run still ends at window + timeout, every request a "timeout".
func TestDrainEndsAtTimeout(t *testing.T) {
	c := &config{protocol: "http1", rate: 200, duration: 300 * time.Millisecond, conns: 2, streams: 1, timeout: 200 * time.Millisecond, arrival: "uniform", quiet: true}
	t0 := time.Now()
	out := execute(context.Background(), c, hangTransport{}, io.Discard)
	if el := time.Since(t0); el > 700*time.Millisecond {
		t.Fatalf("run took %v, want ≈ window + timeout", el)
	}
	if out.Actual.Requests != 60 || out.Actual.Errors != 60 || out.Actual.Codes["timeout"] != 60 || out.Response.Count != 0 || out.Response.P99 != nil {
		t.Fatalf("actual %+v response %+v", out.Actual, out.Response)
	}
}

// slowTransport takes longer per request than one connection's share of the schedule allows.
type slowTransport struct{ d time.Duration }

func (s slowTransport) Do(ctx context.Context, _ int) (string, bool) {
	time.Sleep(s.d)
	return "200", true
}
func (slowTransport) Close() {}

// A dataplane that cannot keep up: every request is sent in the end, but the sends run on past the
// window, so the achieved rate (requests ÷ the span of the sends) falls below the requested one.
func TestAchievedRateWhenTheTargetCannotKeepUp(t *testing.T) {
	// 1 connection, 5 ms a request: at most 200/s against 400/s asked for 250 ms (100 requests ≈ 0.5 s of sends).
	c := &config{protocol: "http1", rate: 400, duration: 250 * time.Millisecond, conns: 1, streams: 1, timeout: 2 * time.Second, arrival: "uniform", quiet: true}
	out := execute(context.Background(), c, slowTransport{5 * time.Millisecond}, io.Discard)
	if out.Actual.Requests != 100 || out.Actual.SentS < 0.4 || out.Actual.QPS > 250 {
		t.Fatalf("requests %d sentS %v qps %v, want 100 requests sent over ≈ 0.5 s, ≈ 200/s", out.Actual.Requests, out.Actual.SentS, out.Actual.QPS)
	}
	// Keeping up: the sends end inside the window and the rate is the requested one.
	out = execute(context.Background(), c, slowTransport{0}, io.Discard)
	if out.Actual.SentS > 0.26 || out.Actual.QPS != 400 {
		t.Fatalf("sentS %v qps %v, want ≤ 0.25 s and 400/s", out.Actual.SentS, out.Actual.QPS)
	}
}

type hangTransport struct{}

func (hangTransport) Do(ctx context.Context, _ int) (string, bool) {
	<-ctx.Done()
	return "timeout", false
}
func (hangTransport) Close() {}

func TestInterruptWritesPartial(t *testing.T) {
	c := &config{protocol: "http1", rate: 100, duration: 10 * time.Second, conns: 1, streams: 1, timeout: time.Second, arrival: "uniform", quiet: true}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out := execute(ctx, c, &stallTransport{start: time.Now(), at: time.Hour}, io.Discard)
	if !out.Interrupted || out.Actual.Requests < 25 || out.Actual.Requests > 32 || out.Actual.WindowS > 0.4 {
		t.Fatalf("interrupted %v requests %d window %v", out.Interrupted, out.Actual.Requests, out.Actual.WindowS)
	}
}

func TestParseArgs(t *testing.T) {
	good := []string{"-target", "http://198.18.0.5:8080/", "-rate", "100", "-duration", "1s"}
	if _, err := parseArgs(good, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{
		{"-target", "http://198.18.0.5:8080/", "-rate", "0", "-duration", "1s"},
		{"-target", "http://198.18.0.5:8080/", "-rate", "100001", "-duration", "1s"},
		{"-target", "http://198.18.0.5:8080/", "-rate", "10", "-duration", "2h"},
		{"-target", "198.18.0.5:8080", "-rate", "10", "-duration", "1s", "-protocol", "grpc"},
		{"-target", "198.18.0.5:8080", "-rate", "10", "-duration", "1s"},
		{"--target", "http://198.18.0.5/", "--rate", "10", "--duration", "1s", "--payload", "2000000"},
		{"-target", "http://198.18.0.5/", "-rate", "10", "-duration", "1s", "-arrival", "bursty"},
	} {
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
	wire.LabRange = netip.MustParsePrefix("198.18.0.0/15") // TestMain widened it for the transport tests
	defer func() { wire.LabRange = netip.MustParsePrefix("127.0.0.0/8") }()
	for _, host := range []string{"127.0.0.1:80", "10.0.0.1:80", "198.20.0.1:80", "[::1]:80"} {
		if checkTarget(host) == nil {
			t.Errorf("target %s accepted", host)
		}
	}
	if err := checkTarget("198.19.255.254:80"); err != nil {
		t.Error(err)
	}
}

func TestCodeName(t *testing.T) {
	for c, want := range map[uint32]string{0: "OK", 7: "PERMISSION_DENIED", 4: "DEADLINE_EXCEEDED", 14: "UNAVAILABLE", 99: "CODE_99"} {
		if got := codeName(codesOf(c)); got != want {
			t.Errorf("%d: %s, want %s", c, got, want)
		}
	}
}
