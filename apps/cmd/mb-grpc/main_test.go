package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"meshbench.dev/apps/internal/wire"
)

func dial(ctx context.Context, addr string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
}

// start serves role on a loopback port (with opts) and returns its address.
func start(t *testing.T, role, next string, opts ...grpc.ServerOption) string {
	t.Helper()
	h, err := newHop(role, next, "", dial)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := h.server(opts...)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// A stand-in for a mesh's gRPC-method rule at inventory: Reserve is denied.
func denyReserve(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if info.FullMethod == "/inventory.v1.InventoryService/Reserve" {
		return nil, status.Error(codes.PermissionDenied, "RBAC: access denied")
	}
	return next(ctx, req)
}

func TestChain(t *testing.T) {
	inv := start(t, "inventory", "", grpc.UnaryInterceptor(denyReserve))
	ord := start(t, "order", inv)
	fe := start(t, "frontend", ord)
	conn, err := grpc.NewClient("passthrough:///"+fe, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := wrapperspb.Bytes(make([]byte, 1024))
	get := func(sel string) (*wrapperspb.BytesValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if sel != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, MethodHeader, sel)
		}
		resp := &wrapperspb.BytesValue{}
		return resp, conn.Invoke(ctx, "/frontend.v1.FrontendService/Get", req, resp)
	}
	resp, err := get("")
	if err != nil || len(resp.Value) != 1024 {
		t.Fatalf("Get → CheckStock: %v, %d bytes", err, len(resp.GetValue()))
	}
	if _, err := get("CheckStock"); err != nil {
		t.Fatal(err)
	}
	_, err = get("Reserve")
	if st := status.Convert(err); st.Code() != codes.PermissionDenied {
		t.Fatalf("Get → Reserve: %v, want PERMISSION_DENIED passed back", err)
	} else {
		t.Log(st.Message())
	}
	if _, err := get("Delete"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad selector: %v", err)
	}
	// Inventory's methods are served directly too, with a BytesValue reply.
	c2, _ := grpc.NewClient("passthrough:///"+inv, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer c2.Close()
	out := &wrapperspb.BytesValue{}
	if err := c2.Invoke(context.Background(), "/inventory.v1.InventoryService/CheckStock", req, out); err != nil || len(out.Value) != 1024 {
		t.Fatalf("CheckStock: %v", err)
	}
	if err := c2.Invoke(context.Background(), "/inventory.v1.InventoryService/Nope", req, out); status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown method: %v", err)
	}
}

// A hop whose next is down answers UNAVAILABLE (the downstream status), not a hang.
func TestDownstreamDown(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := lis.Addr().String()
	lis.Close()
	fe := start(t, "frontend", dead)
	conn, _ := grpc.NewClient("passthrough:///"+fe, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := conn.Invoke(ctx, "/frontend.v1.FrontendService/Get", wrapperspb.Bytes(nil), &wrapperspb.BytesValue{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("%v, want UNAVAILABLE", err)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-role", "cart", "-listen", "198.18.0.2:9000"},
		{"-role", "inventory"},
		{"-role", "inventory", "-listen", "198.18.0.2:9000", "-next", "198.18.0.3:9000"},
		{"-role", "order", "-listen", "198.18.0.2:9000"},
		{"-role", "order", "-listen", "10.0.0.2:9000", "-next", "198.18.0.3:9000"},
		{"-role", "frontend", "-listen", "198.18.0.2:9000", "-next", "127.0.0.1:9000"},
		{"-role", "inventory", "-listen", ":0"},
		{"-role", "inventory", "-listen", ":http"},
		{"-role", "order", "-listen", ":9000", "-next", ":9001"},
	} {
		if code := run(args, io.Discard); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if wire.InLab(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("loopback must be outside the lab range")
	}
}
