package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"meshbench.dev/apps/internal/wire"
)

// The transports are tested on loopback: the lab rule is widened to 127.0.0.0/8 for this package's tests.
func TestMain(m *testing.M) {
	wire.LabRange = netip.MustParsePrefix("127.0.0.0/8")
	os.Exit(m.Run())
}

func do(t *testing.T, tr Transport) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return tr.Do(ctx, 0)
}

func TestHTTP1AndH2C(t *testing.T) {
	var proto, got int
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto = r.ProtoMajor
		b, _ := io.ReadAll(r.Body)
		got = len(b)
		if r.URL.Path == "/fail" {
			w.WriteHeader(503)
		}
		w.Write([]byte("hello"))
	})
	s1 := httptest.NewServer(h)
	defer s1.Close()
	s2 := httptest.NewServer(h2c.NewHandler(h, &http2.Server{}))
	defer s2.Close()
	for _, c := range []struct {
		protocol, url string
		payload       int
		code          string
		ok            bool
		major         int
	}{
		{"http1", s1.URL + "/", 0, "200", true, 1},
		{"http1", s1.URL + "/", 100, "200", true, 1},
		{"http1", s1.URL + "/fail", 0, "503", false, 1},
		{"h2c", s2.URL + "/", 10, "200", true, 2},
		{"h2c", s2.URL + "/fail", 0, "503", false, 2},
	} {
		tr := newHTTP(c.protocol, c.url, 2, make([]byte, c.payload))
		code, ok := do(t, tr)
		tr.Close()
		if code != c.code || ok != c.ok || proto != c.major || got != c.payload {
			t.Errorf("%s %s: %s %v HTTP/%d %d bytes", c.protocol, c.url, code, ok, proto, got)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := lis.Addr().String()
	lis.Close()
	tr := newHTTP("http1", "http://"+dead+"/", 1, nil)
	if code, ok := do(t, tr); code != "connect" || ok {
		t.Errorf("closed port: %s", code)
	}
	// A server that accepts and never answers: "timeout" at the request's deadline.
	hang, _ := net.Listen("tcp", "127.0.0.1:0")
	defer hang.Close()
	tr = newHTTP("http1", "http://"+hang.Addr().String()+"/", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if code, _ := tr.Do(ctx, 0); code != "timeout" {
		t.Errorf("silent server: %s", code)
	}
	// Outside the lab range: refused at dial, nothing sent.
	wire.LabRange = netip.MustParsePrefix("198.18.0.0/15")
	defer func() { wire.LabRange = netip.MustParsePrefix("127.0.0.0/8") }()
	s := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("request reached a non-lab address") }))
	defer s.Close()
	if code, _ := do(t, newHTTP("http1", s.URL, 1, nil)); code != "connect" {
		t.Errorf("non-lab address: %s", code)
	}
}

func TestGRPC(t *testing.T) {
	var got []byte
	handler := func(deny bool) grpc.MethodHandler {
		return func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			got = in
			if deny {
				return nil, status.Error(codes.PermissionDenied, "no")
			}
			out := []byte{} // an empty message: decodes as Empty or an empty BytesValue
			return &out, nil
		}
	}
	s := grpc.NewServer(grpc.ForceServerCodec(wire.RawCodec{}))
	s.RegisterService(&grpc.ServiceDesc{ServiceName: "t.v1.S", HandlerType: (*any)(nil), Methods: []grpc.MethodDesc{
		{MethodName: "Ok", Handler: handler(false)}, {MethodName: "Deny", Handler: handler(true)},
	}}, struct{}{})
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(lis)
	defer s.Stop()
	for _, c := range []struct{ method, code string }{{"/t.v1.S/Ok", "OK"}, {"/t.v1.S/Deny", "PERMISSION_DENIED"}, {"/t.v1.S/None", "UNIMPLEMENTED"}} {
		tr, err := newGRPC(lis.Addr().String(), c.method, 2, make([]byte, 1024))
		if err != nil {
			t.Fatal(err)
		}
		tr.Connect(time.Second)
		code, ok := do(t, tr)
		tr.Close()
		if code != c.code || ok != (c.code == "OK") {
			t.Errorf("%s: %s", c.method, code)
		}
	}
	var bv wrapperspb.BytesValue
	if err := proto.Unmarshal(got, &bv); err != nil || len(bv.Value) != 1024 {
		t.Fatalf("request is not a 1024-byte BytesValue: %v", err)
	}
}

// -header reaches the server: as gRPC metadata (the chain's x-inventory-method) and as an HTTP header.
func TestHeaders(t *testing.T) {
	s := grpc.NewServer(grpc.ForceServerCodec(wire.RawCodec{}))
	s.RegisterService(&grpc.ServiceDesc{ServiceName: "t.v1.S", HandlerType: (*any)(nil), Methods: []grpc.MethodDesc{{
		MethodName: "M",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			md, _ := metadata.FromIncomingContext(ctx)
			if v := md.Get("x-inventory-method"); len(v) != 1 || v[0] != "Reserve" {
				return nil, status.Errorf(codes.InvalidArgument, "x-inventory-method %v", v)
			}
			out := []byte{}
			return &out, nil
		},
	}}}, struct{}{})
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(lis)
	defer s.Stop()
	var h headerList
	if err := h.Set("x-inventory-method: Reserve"); err != nil {
		t.Fatal(err)
	}
	for _, with := range []bool{false, true} {
		tr, err := newGRPC(lis.Addr().String(), "/t.v1.S/M", 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if with {
			tr.setHeaders(h)
		}
		tr.Connect(time.Second)
		code, _ := do(t, tr)
		tr.Close()
		if want := map[bool]string{true: "OK", false: "INVALID_ARGUMENT"}[with]; code != want {
			t.Errorf("grpc with header %v: %s, want %s", with, code, want)
		}
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-inventory-method") != "Reserve" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer hs.Close()
	tr := newHTTP("http1", hs.URL, 1, nil)
	tr.headers = h
	if code, _ := do(t, tr); code != "200" {
		t.Errorf("http with header: %s", code)
	}
	tr.Close()
	for _, bad := range []string{"novalue", ":v", "grpc-timeout:1s", "X-Upper:1", "k-bin:x", "k:\x01"} {
		var l headerList
		if l.Set(bad) == nil {
			t.Errorf("-header %q accepted", bad)
		}
	}
}
