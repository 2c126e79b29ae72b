// The three ways to send one request. Each worker owns one in-flight request at a time; for
// HTTP/1.1 there are C workers and at most C keep-alive connections (one request per connection,
// like wrk2), for h2c and gRPC there are C connections and S workers (streams) per connection.
// Failures are named the same way for every protocol: "timeout", "connect", "reset", else the
// HTTP status or the gRPC status code name.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"meshbench.dev/apps/internal/wire"
)

// Transport sends one request for worker w and names its outcome.
type Transport interface {
	Do(ctx context.Context, w int) (code string, ok bool)
	Close()
}

var dialer = wire.Dialer

// classify names a transport-level error.
func classify(ctx context.Context, err error) string {
	var ne net.Error
	var oe *net.OpError
	switch {
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &oe) && oe.Op == "dial":
		return "connect"
	default:
		return "reset"
	}
}

type httpTransport struct {
	clients []*http.Client // h2c: one per connection; http1: one shared pool of C connections
	url     string
	payload []byte
	headers headerList
}

// A redirect is a response like any other: counted by its status, never followed.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func newHTTP(protocol, url string, conns int, payload []byte) *httpTransport {
	t := &httpTransport{url: url, payload: payload}
	if protocol == "http1" {
		tr := &http.Transport{
			DialContext:         dialer.DialContext,
			MaxConnsPerHost:     conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // never upgrade
		}
		t.clients = []*http.Client{{Transport: tr, CheckRedirect: noRedirect}}
		return t
	}
	// h2c: prior-knowledge HTTP/2 over plain TCP; one Transport per connection so there are exactly C.
	for range conns {
		tr := &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
			DisableCompression: true,
		}
		t.clients = append(t.clients, &http.Client{Transport: tr, CheckRedirect: noRedirect})
	}
	return t
}

func (t *httpTransport) Do(ctx context.Context, w int) (string, bool) {
	method, body := http.MethodGet, io.Reader(nil)
	if len(t.payload) > 0 {
		method, body = http.MethodPost, bytes.NewReader(t.payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.url, body)
	if err != nil {
		return "reset", false
	}
	for _, kv := range t.headers {
		req.Header.Set(kv[0], kv[1])
	}
	resp, err := t.clients[w%len(t.clients)].Do(req)
	if err != nil {
		return classify(ctx, err), false
	}
	_, err = io.Copy(io.Discard, resp.Body) // completion = the whole body read
	resp.Body.Close()
	if err != nil {
		return classify(ctx, err), false
	}
	return strconv.Itoa(resp.StatusCode), resp.StatusCode >= 200 && resp.StatusCode < 300
}

func (t *httpTransport) Close() {
	for _, c := range t.clients {
		if tr, ok := c.Transport.(interface{ CloseIdleConnections() }); ok {
			tr.CloseIdleConnections()
		}
	}
}

type grpcTransport struct {
	conns  []*grpc.ClientConn
	method string
	req    []byte
	md     metadata.MD // sent with every call (-header)
}

func (t *grpcTransport) setHeaders(h headerList) {
	if len(h) == 0 {
		t.md = nil
		return
	}
	t.md = metadata.MD{}
	for _, kv := range h {
		t.md.Append(kv[0], kv[1])
	}
}

func newGRPC(target, method string, conns int, payload []byte) (*grpcTransport, error) {
	req, err := proto.Marshal(wrapperspb.Bytes(payload))
	if err != nil {
		return nil, err
	}
	t := &grpcTransport{method: method, req: req}
	for range conns {
		// Each ClientConn is its own TCP connection.
		c, err := grpc.NewClient("passthrough:///"+target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return dialer.DialContext(ctx, "tcp", addr)
			}),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(wire.RawCodec{}), grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			t.Close()
			return nil, err
		}
		t.conns = append(t.conns, c)
	}
	return t, nil
}

// Connect starts every connection and waits up to d for them to be ready (a target that is down
// is not waited for longer: its requests then fail and are counted).
func (t *grpcTransport) Connect(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for _, c := range t.conns {
		c.Connect()
	}
	for _, c := range t.conns {
		for s := c.GetState(); s != connectivity.Ready && ctx.Err() == nil; s = c.GetState() {
			if s == connectivity.TransientFailure {
				return
			}
			c.WaitForStateChange(ctx, s)
		}
	}
}

func (t *grpcTransport) Do(ctx context.Context, w int) (string, bool) {
	var resp []byte
	if t.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, t.md)
	}
	err := t.conns[w%len(t.conns)].Invoke(ctx, t.method, &t.req, &resp)
	if err == nil {
		return "OK", true
	}
	st, isStatus := status.FromError(err)
	if !isStatus {
		return classify(ctx, err), false
	}
	if ctx.Err() != nil && (st.Code() == codes.DeadlineExceeded || st.Code() == codes.Canceled) {
		return "timeout", false
	}
	return codeName(st.Code()), false
}

func (t *grpcTransport) Close() {
	for _, c := range t.conns {
		c.Close()
	}
}

// codeName is the canonical upper-case name ("PERMISSION_DENIED"); grpc-go's String() is CamelCase.
func codeName(c codes.Code) string {
	s := c.String()
	if c == codes.OK {
		return "OK"
	}
	if strings.HasPrefix(s, "Code(") {
		return fmt.Sprintf("CODE_%d", uint32(c))
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
