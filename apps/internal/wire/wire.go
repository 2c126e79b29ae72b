// Package wire holds what mb-load and mb-grpc share: the lab-range rule applied at every dial, and
// a gRPC codec that passes message bytes through unparsed (no generated protobuf code needed; a
// BytesValue is built with wrapperspb, and any response type is accepted).
package wire

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// LabRange is where lab traffic may go (the lab's namespaces use 198.18.0.0/15 only).
// Tests on loopback swap it.
var LabRange = netip.MustParsePrefix("198.18.0.0/15")

// InLab reports whether addr (an IP, possibly IPv4-mapped) is in LabRange.
func InLab(addr netip.Addr) bool { return LabRange.Contains(addr.Unmap()) }

// Dialer refuses, at connect time, any address outside LabRange: a redirect or a name that
// resolves elsewhere cannot take traffic out of the lab.
var Dialer = &net.Dialer{
	Timeout:   5 * time.Second,
	KeepAlive: 30 * time.Second,
	Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !InLab(ap.Addr()) {
			return fmt.Errorf("refusing to connect to %s: outside %s (lab traffic only)", address, LabRange)
		}
		return nil
	},
}

// RawCodec sends *[]byte as the encoded message and decodes into *[]byte unparsed.
type RawCodec struct{}

func (RawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (RawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

// Name is "proto": the content-type stays application/grpc+proto, as a generated client's.
func (RawCodec) Name() string { return "proto" }
