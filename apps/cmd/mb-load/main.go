// mb-load: meshbench's open-loop load generator (issue 16; contract and figures in docs/load.md). It sends requests on a
// schedule fixed by the rate alone and times each one from its intended send time, so a stall in
// the path shows as the queue it causes (no coordinated omission); the service time (from the
// actual send, what fortio reports) is kept beside it. One JSON result, schema meshbench/mb-load/v1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"meshbench.dev/apps/internal/wire"
)

const version = "0.1.0"

type config struct {
	target, protocol, method, arrival, jsonFile string
	rate                                        float64
	duration, warmup, timeout                   time.Duration
	conns, streams, payload                     int
	seed                                        uint64
	quiet                                       bool
	host                                        string // host:port to dial
	headers                                     headerList
}

// headerList is the repeatable -header k:v: request metadata (gRPC) or HTTP headers on every request.
type headerList [][2]string

// maxHeaders bounds -header; mesh rules match a few headers, not hundreds.
const maxHeaders = 16

func (h *headerList) String() string { return strings.Join(h.pairs(), ",") }

func (h headerList) pairs() []string {
	out := make([]string, 0, len(h))
	for _, kv := range h {
		out = append(out, kv[0]+":"+kv[1])
	}
	return out
}

// Set takes "key:value": a lowercase token key (gRPC metadata keys are lowercase; grpc-* and
// pseudo-headers are the transport's own) and a value of printable ASCII.
func (h *headerList) Set(s string) error {
	k, v, found := strings.Cut(s, ":")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	switch {
	case !found || k == "":
		return fmt.Errorf("must be key:value, got %q", s)
	case len(*h) >= maxHeaders:
		return fmt.Errorf("at most %d headers", maxHeaders)
	case strings.HasPrefix(k, "grpc-"):
		return fmt.Errorf("key %q: grpc-* keys are reserved by gRPC", k)
	case strings.HasSuffix(k, "-bin"):
		return fmt.Errorf("key %q: binary metadata (-bin) is not supported", k)
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("key %q must be lowercase letters, digits, '-', '_' or '.'", k)
		}
	}
	for _, r := range v {
		if r < 0x20 || r > 0x7e {
			return fmt.Errorf("value of %q must be printable ASCII", k)
		}
	}
	*h = append(*h, [2]string{k, v})
	return nil
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func bad(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func parseArgs(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("mb-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.target, "target", "", "http://198.18.x.y:port/path (http1, h2c) or 198.18.x.y:port (grpc)")
	fs.StringVar(&c.protocol, "protocol", "http1", "http1|h2c|grpc")
	fs.StringVar(&c.method, "method", "", "gRPC full method /pkg.Service/Method")
	fs.Float64Var(&c.rate, "rate", 0, "requests per second (0 < R <= 100000)")
	fs.DurationVar(&c.duration, "duration", 0, "measured window (1ms..1h)")
	fs.DurationVar(&c.warmup, "warmup", 0, "warm-up on the same schedule, not recorded (0..10m)")
	fs.IntVar(&c.conns, "connections", 4, "connections")
	fs.IntVar(&c.streams, "streams", 16, "h2c/grpc: concurrent streams per connection")
	fs.StringVar(&c.arrival, "arrival", "uniform", "uniform|poisson")
	fs.Uint64Var(&c.seed, "seed", 1, "poisson seed")
	fs.IntVar(&c.payload, "payload", 0, "request body bytes (<= 1 MiB)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "per request")
	fs.StringVar(&c.jsonFile, "json", "", "write the result JSON here (default stdout)")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
	fs.Var(&c.headers, "header", "key:value sent with every request (gRPC metadata or HTTP header); repeatable")
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return nil, bad("unexpected argument %q", fs.Arg(0))
	case c.target == "":
		return nil, bad("-target is required")
	case c.protocol != "http1" && c.protocol != "h2c" && c.protocol != "grpc":
		return nil, bad("-protocol must be http1, h2c or grpc, not %q", c.protocol)
	case !(c.rate > 0 && c.rate <= 100000):
		return nil, bad("-rate must be in (0, 100000], got %v", c.rate)
	case c.duration < time.Millisecond || c.duration > time.Hour:
		return nil, bad("-duration must be in 1ms..1h, got %v", c.duration)
	case c.warmup < 0 || c.warmup > 10*time.Minute:
		return nil, bad("-warmup must be in 0..10m, got %v", c.warmup)
	case c.conns < 1 || c.conns > 10000:
		return nil, bad("-connections must be in 1..10000, got %d", c.conns)
	case c.streams < 1 || c.streams > 1000:
		return nil, bad("-streams must be in 1..1000, got %d", c.streams)
	case c.arrival != "uniform" && c.arrival != "poisson":
		return nil, bad("-arrival must be uniform or poisson, not %q", c.arrival)
	case c.payload < 0 || c.payload > 1<<20:
		return nil, bad("-payload must be in 0..1048576, got %d", c.payload)
	case c.timeout <= 0 || c.timeout > 10*time.Minute:
		return nil, bad("-timeout must be in (0, 10m], got %v", c.timeout)
	}
	if c.protocol == "grpc" {
		if c.method == "" {
			return nil, bad("-method /pkg.Service/Method is required with -protocol grpc")
		}
		if p := strings.Split(c.method, "/"); len(p) != 3 || p[0] != "" || p[1] == "" || p[2] == "" {
			return nil, bad("-method must look like /pkg.Service/Method, got %q", c.method)
		}
		if _, _, err := net.SplitHostPort(c.target); err != nil {
			return nil, bad("-target for grpc must be host:port, got %q", c.target)
		}
		c.host = c.target
	} else {
		u, err := url.Parse(c.target)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return nil, bad("-target for %s must be an http:// URL, got %q", c.protocol, c.target)
		}
		c.host = u.Host
		if u.Port() == "" {
			c.host = net.JoinHostPort(u.Hostname(), "80")
		}
		if c.method != "" {
			return nil, bad("-method is for -protocol grpc (http sends GET, or POST with -payload)")
		}
	}
	return c, nil
}

// checkTarget refuses a target that resolves to anything outside the lab range.
func checkTarget(hostport string) error {
	host, _, _ := net.SplitHostPort(hostport)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return bad("cannot resolve target host %q: %v", host, err)
	}
	for _, a := range addrs {
		if !wire.InLab(a) {
			return bad("target %s resolves to %s, outside 198.18.0.0/15 (lab traffic only)", host, a.Unmap())
		}
	}
	return nil
}

type Output struct {
	Schema      string     `json:"schema"`
	Engine      string     `json:"engine"`
	Version     string     `json:"version"`
	LoadModel   string     `json:"loadModel"`
	Arrival     string     `json:"arrival"`
	Protocol    string     `json:"protocol"`
	Target      string     `json:"target"`
	Method      string     `json:"method"`
	Headers     []string   `json:"headers,omitempty"` // -header, as key:value
	Requested   Requested  `json:"requested"`
	Actual      Actual     `json:"actual"`
	Response    Summary    `json:"responseTimeUs"`
	Service     Summary    `json:"serviceTimeUs"`
	SendLag     LagSummary `json:"sendLagUs"`
	Generator   Generator  `json:"generator"`
	Interrupted bool       `json:"interrupted"`
}

type Requested struct {
	QPS          float64 `json:"qps"`
	DurationS    float64 `json:"durationS"`
	WarmupS      float64 `json:"warmupS"`
	Connections  int     `json:"connections"`
	Streams      int     `json:"streams"`
	PayloadBytes int     `json:"payloadBytes"`
	TimeoutS     float64 `json:"timeoutS"`
}

type Actual struct {
	QPS      float64          `json:"qps"`
	Requests int64            `json:"requests"`
	OK       int64            `json:"ok"`
	Errors   int64            `json:"errors"`
	Codes    map[string]int64 `json:"codes"`
	WindowS  float64          `json:"windowS"`
	// SentS: from the window's start to the actual send of its last request. In an open loop every
	// scheduled request is sent in the end, so the count alone always matches the rate; a dataplane
	// that cannot keep up shows as sends running on past the window (qps = requests ÷ max(windowS, sentS)).
	SentS float64 `json:"sentS"`
}

type Generator struct {
	CPUSeconds     float64 `json:"cpuSeconds"`
	WallSeconds    float64 `json:"wallSeconds"`
	CPUUtilisation float64 `json:"cpuUtilisation"`
	GOMAXPROCS     int     `json:"gomaxprocs"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// tally collects the measured requests.
type tally struct {
	resp, svc, lag *Hist
	mu             sync.Mutex
	codes          map[string]int64
	ok, errs       atomic.Int64
}

func (t *tally) add(code string, ok bool) {
	t.mu.Lock()
	t.codes[code]++
	t.mu.Unlock()
	if ok {
		t.ok.Add(1)
	} else {
		t.errs.Add(1)
	}
}

// execute runs the schedule; interrupted when sigCtx ends before the schedule does.
func execute(sigCtx context.Context, c *config, tr Transport, stderr io.Writer) Output {
	workers := c.conns
	if c.protocol != "http1" {
		workers = c.conns * c.streams
	}
	tl := &tally{resp: NewHist(), svc: NewHist(), lag: NewHist(), codes: map[string]int64{}}
	sched := NewSchedule(c.rate, c.arrival == "poisson", c.seed, c.warmup, c.duration)
	cpu0, wall0 := cpuSeconds(), time.Now()
	t0 := wall0.Add(10 * time.Millisecond)
	windowStart := t0.Add(c.warmup)
	windowEnd := windowStart.Add(c.duration)
	// Drain: requests intended in the window may finish up to -timeout after it; then the rest are "timeout".
	runCtx, cancel := context.WithDeadline(sigCtx, windowEnd.Add(c.timeout))
	defer cancel()
	var inflight atomic.Int64
	var lastSent atomic.Int64 // UnixNano of the latest actual send of a measured request

	// One dispatcher sleeps until each slot's intended time and hands it to a free worker; when
	// none is free it blocks, and the slot goes out late, as soon as one is (the queue a stall
	// causes). One sleeper, not one per worker: a thread in nanosleep holds its P, and several
	// would leave none to read the responses (seen at 2000/s on 2 cores: service p50 ×3).
	slots := make(chan Slot)
	go func() {
		defer close(slots)
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for {
			sl, more := sched.Next()
			if !more || sigCtx.Err() != nil {
				return
			}
			if runCtx.Err() == nil {
				sleepUntil(runCtx, t0.Add(sl.Offset), timer)
			}
			select {
			case slots <- sl:
				continue
			case <-runCtx.Done():
			}
			if sigCtx.Err() != nil {
				return // interrupted: this slot is not counted
			}
			if sl.Measured { // past the drain deadline: never sent
				tl.add("timeout", false)
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for sl := range slots {
				if sigCtx.Err() != nil {
					continue // interrupted: drain the channel, count nothing more
				}
				intended := t0.Add(sl.Offset)
				reqCtx, reqCancel := context.WithTimeout(runCtx, c.timeout)
				inflight.Add(1)
				sent := time.Now()
				code, ok := tr.Do(reqCtx, w)
				r := Result{Intended: intended, Sent: sent, Done: time.Now()}
				inflight.Add(-1)
				reqCancel()
				if sigCtx.Err() != nil && !ok {
					continue // cut short by the interrupt, not by the target
				}
				if !sl.Measured {
					continue
				}
				for n := sent.UnixNano(); ; {
					if old := lastSent.Load(); old >= n || lastSent.CompareAndSwap(old, n) {
						break
					}
				}
				tl.add(code, ok)
				tl.lag.Record(r.SendLag().Microseconds())
				if ok {
					tl.resp.Record(r.ResponseTime().Microseconds())
					tl.svc.Record(r.ServiceTime().Microseconds())
				}
			}
		})
	}

	done := make(chan struct{})
	if !c.quiet {
		go progress(done, stderr, wall0, windowStart, c.duration, tl, &inflight)
	}
	wg.Wait()
	close(done)

	interrupted := sigCtx.Err() != nil
	window := c.duration
	if interrupted {
		window = min(max(time.Since(windowStart), 0), c.duration)
	}
	ok, errs := tl.ok.Load(), tl.errs.Load()
	wall := time.Since(wall0).Seconds()
	cpu := cpuSeconds() - cpu0
	streams := c.streams
	if c.protocol == "http1" {
		streams = 1
	}
	out := Output{
		Schema: "meshbench/mb-load/v1", Engine: "mb-load", Version: version, LoadModel: "open-loop",
		Arrival: c.arrival, Protocol: c.protocol, Target: c.target, Method: c.method, Headers: c.headers.pairs(),
		Requested: Requested{QPS: c.rate, DurationS: c.duration.Seconds(), WarmupS: c.warmup.Seconds(), Connections: c.conns,
			Streams: streams, PayloadBytes: c.payload, TimeoutS: c.timeout.Seconds()},
		Actual:   Actual{Requests: ok + errs, OK: ok, Errors: errs, Codes: tl.codes, WindowS: round(window.Seconds(), 6)},
		Response: tl.resp.Summary(), Service: tl.svc.Summary(), SendLag: tl.lag.Lag(),
		Generator: Generator{CPUSeconds: round(cpu, 3), WallSeconds: round(wall, 3), CPUUtilisation: round(cpu/wall, 4),
			GOMAXPROCS: runtime.GOMAXPROCS(0)},
		Interrupted: interrupted,
	}
	span := window
	if ls := lastSent.Load(); ls > 0 {
		sentSpan := time.Unix(0, ls).Sub(windowStart)
		out.Actual.SentS = round(max(sentSpan, 0).Seconds(), 6)
		if !interrupted {
			span = max(window, sentSpan)
		}
	}
	if span > 0 {
		out.Actual.QPS = round(float64(ok+errs)/span.Seconds(), 3)
	}
	return out
}

func progress(done <-chan struct{}, stderr io.Writer, start, windowStart time.Time, window time.Duration, tl *tally, inflight *atomic.Int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last int64
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			phase := "warm-up"
			if now.After(windowStart.Add(window)) {
				phase = "drain"
			} else if now.After(windowStart) {
				phase = "window"
			}
			n := tl.ok.Load() + tl.errs.Load()
			fmt.Fprintf(stderr, "mb-load: %5.1fs %-7s done %d (+%d/s) errors %d in flight %d\n",
				now.Sub(start).Seconds(), phase, n, n-last, tl.errs.Load(), inflight.Load())
			last = n
		}
	}
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "version" || args[0] == "-version" || args[0] == "--version") {
		fmt.Fprintf(stdout, "mb-load %s\n", version)
		return 0
	}
	c, err := parseArgs(args, stderr)
	if err == nil {
		err = checkTarget(c.host)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "mb-load: %v\n", err)
		}
		return 2
	}
	payload := make([]byte, c.payload)
	for i := range payload {
		payload[i] = 'x'
	}
	var tr Transport
	if c.protocol == "grpc" {
		g, err := newGRPC(c.host, c.method, c.conns, payload)
		if err != nil {
			fmt.Fprintf(stderr, "mb-load: grpc client: %v\n", err)
			return 3
		}
		g.setHeaders(c.headers)
		g.Connect(min(c.timeout, time.Second))
		tr = g
	} else {
		h := newHTTP(c.protocol, c.target, c.conns, payload)
		h.headers = c.headers
		tr = h
	}
	defer tr.Close()

	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := execute(sigCtx, c, tr, stderr)
	b, _ := json.Marshal(out)
	b = append(b, '\n')
	if c.jsonFile != "" {
		err = os.WriteFile(c.jsonFile, b, 0o644)
	} else {
		_, err = stdout.Write(b)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mb-load: writing the result: %v\n", err)
		return 3
	}
	if out.Interrupted {
		return 130
	}
	return 0
}
