// mb-grpc: the small gRPC service chain of issue 16 (frontend → order → inventory), so a mesh's
// gRPC-method rules can be exercised on real methods. One binary, one role per process. Each hop
// answers with a 1 KB google.protobuf.BytesValue and, except the last, first calls the next hop
// with a 1 KB BytesValue; a failed downstream call is answered with the same status code, so a
// PERMISSION_DENIED on order → inventory Reserve reaches the client of frontend as is.
// Services are hand-written grpc.ServiceDescs over a pass-through codec: no protoc, no generated code.
//
// Which inventory method order calls: -next-method, or per request the metadata key
// x-inventory-method (CheckStock or Reserve), which frontend passes on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"meshbench.dev/apps/internal/wire"
)

const version = "0.1.0"

// MethodHeader selects order's inventory method per request.
const MethodHeader = "x-inventory-method"

type roleSpec struct {
	service     string
	methods     []string
	defaultNext string // "" for the last hop
}

var roles = map[string]roleSpec{
	"inventory": {"inventory.v1.InventoryService", []string{"CheckStock", "Reserve"}, ""},
	"order":     {"order.v1.OrderService", []string{"Create"}, "/inventory.v1.InventoryService/CheckStock"},
	"frontend":  {"frontend.v1.FrontendService", []string{"Get"}, "/order.v1.OrderService/Create"},
}

// hop serves one role.
type hop struct {
	role       string
	next       *grpc.ClientConn // nil for inventory
	nextMethod string
	msg        []byte // the encoded 1 KB BytesValue: both the reply and the downstream request
}

func newHop(role, next, nextMethod string, dialer func(context.Context, string) (net.Conn, error)) (*hop, error) {
	b, err := proto.Marshal(wrapperspb.Bytes([]byte(strings.Repeat("m", 1024))))
	if err != nil {
		return nil, err
	}
	h := &hop{role: role, nextMethod: nextMethod, msg: b}
	if h.nextMethod == "" {
		h.nextMethod = roles[role].defaultNext
	}
	if next != "" {
		h.next, err = grpc.NewClient("passthrough:///"+next,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(dialer),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(wire.RawCodec{})))
		if err != nil {
			return nil, err
		}
	}
	return h, nil
}

func (h *hop) call(ctx context.Context) error {
	if h.next == nil {
		return nil
	}
	method := h.nextMethod
	md, _ := metadata.FromIncomingContext(ctx)
	sel := md.Get(MethodHeader)
	if h.role == "order" && len(sel) > 0 {
		if sel[0] != "CheckStock" && sel[0] != "Reserve" {
			return status.Errorf(codes.InvalidArgument, "%s must be CheckStock or Reserve, not %q", MethodHeader, sel[0])
		}
		method = "/inventory.v1.InventoryService/" + sel[0]
	}
	if len(sel) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, MethodHeader, sel[0])
	}
	var resp []byte
	if err := h.next.Invoke(ctx, method, &h.msg, &resp); err != nil {
		st := status.Convert(err)
		return status.Errorf(st.Code(), "%s → %s: %s", h.role, method, st.Message())
	}
	return nil
}

func (h *hop) handler(full string) grpc.MethodHandler {
	return func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		var in []byte
		if err := dec(&in); err != nil {
			return nil, err
		}
		serve := func(ctx context.Context, _ any) (any, error) {
			if err := h.call(ctx); err != nil {
				return nil, err
			}
			return &h.msg, nil
		}
		if icpt == nil {
			return serve(ctx, &in)
		}
		return icpt(ctx, &in, &grpc.UnaryServerInfo{FullMethod: full}, serve)
	}
}

// server is a gRPC server with role's service registered.
func (h *hop) server(opts ...grpc.ServerOption) *grpc.Server {
	spec := roles[h.role]
	desc := grpc.ServiceDesc{ServiceName: spec.service, HandlerType: (*any)(nil)}
	for _, m := range spec.methods {
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: m, Handler: h.handler("/" + spec.service + "/" + m)})
	}
	s := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodec(wire.RawCodec{})}, opts...)...)
	s.RegisterService(&desc, struct{}{})
	return s
}

func labAddr(hostport string) error {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return fmt.Errorf("%q is not ip:port", hostport)
	}
	if !wire.InLab(ap.Addr()) {
		return fmt.Errorf("%s is outside %s (lab traffic only)", hostport, wire.LabRange)
	}
	return nil
}

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "version" || args[0] == "-version" || args[0] == "--version") {
		fmt.Fprintf(os.Stdout, "mb-grpc %s\n", version)
		return 0
	}
	fs := flag.NewFlagSet("mb-grpc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	role := fs.String("role", "", "inventory|order|frontend")
	listen := fs.String("listen", "", "198.18.x.y:port to serve on, or :port for every address of the (pod's) namespace")
	next := fs.String("next", "", "198.18.x.y:port of the next hop (order and frontend)")
	nextMethod := fs.String("next-method", "", "full method to call on the next hop (default: frontend → Create, order → CheckStock)")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mb-grpc: "+format+"\n", a...)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		return fail("%v", err)
	}
	spec, known := roles[*role]
	switch {
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	case !known:
		return fail("-role must be inventory, order or frontend, not %q", *role)
	case *listen == "":
		return fail("-listen is required")
	case spec.defaultNext == "" && *next != "":
		return fail("-next: inventory is the last hop")
	case spec.defaultNext != "" && *next == "":
		return fail("-next is required for %s", *role)
	}
	// :port listens on every address of the namespace: a sidecar hands inbound calls to 127.0.0.1,
	// a node proxy or a peer to the pod's IP. Only the dialled address (-next) must be a lab one.
	if p, ok := strings.CutPrefix(*listen, ":"); ok {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fail("-listen %q: :port needs a port in 1..65535", *listen)
		}
	}
	for _, a := range []string{*listen, *next} {
		if a == "" || a == *listen && strings.HasPrefix(a, ":") {
			continue
		}
		if err := labAddr(a); err != nil {
			return fail("%v", err)
		}
	}
	h, err := newHop(*role, *next, *nextMethod, func(ctx context.Context, addr string) (net.Conn, error) {
		return wire.Dialer.DialContext(ctx, "tcp", addr)
	})
	if err != nil {
		return fail("%v", err)
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "mb-grpc: %v\n", err)
		return 3
	}
	s := h.server()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		t := time.AfterFunc(2*time.Second, s.Stop) // in-flight calls get 2 s
		s.GracefulStop()
		t.Stop()
	}()
	fmt.Fprintf(stderr, "mb-grpc %s: %s on %s%s\n", version, spec.service, *listen, map[bool]string{true: " → " + *next, false: ""}[*next != ""])
	if err := s.Serve(lis); err != nil {
		fmt.Fprintf(stderr, "mb-grpc: %v\n", err)
		return 1
	}
	return 0
}
