package main

import (
	"math"
	"testing"

	"google.golang.org/grpc/codes"
)

func codesOf(c uint32) codes.Code { return codes.Code(c) }

func TestHistPercentiles(t *testing.T) {
	h := NewHist()
	for v := int64(1); v <= 100_000; v++ { // 1 µs .. 100 ms, uniform
		h.Record(v)
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{50, 50_000}, {90, 90_000}, {99, 99_000}, {99.9, 99_900}, {100, 100_000}} {
		got := h.Quantile(c.q)
		if math.Abs(float64(got-c.want))/float64(c.want) > 0.001 { // 3 significant digits
			t.Errorf("p%v = %d, want %d ± 0.1%%", c.q, got, c.want)
		}
	}
	s := h.Summary()
	if s.Count != 100_000 || *s.Min != 1 || *s.Max != 100_000 || math.Abs(*s.Mean-50_000.5) > 0.1 {
		t.Fatalf("count %d min %d max %d mean %v", s.Count, *s.Min, *s.Max, *s.Mean)
	}
	// Buckets: exact counts on round edges, ascending, summing to count.
	var sum, le100 int64
	for i, b := range s.Histogram {
		if i > 0 && b.LeUs <= s.Histogram[i-1].LeUs {
			t.Fatal("buckets not ascending")
		}
		sum += b.Count
		if b.LeUs <= 100 {
			le100 += b.Count
		}
	}
	if sum != 100_000 || le100 != 100 {
		t.Fatalf("bucket sum %d, ≤100 µs %d", sum, le100)
	}
}

func TestHistSmallAndExact(t *testing.T) {
	h := NewHist()
	h.Record(0)
	h.Record(7)
	h.Record(123_456_789) // above 60 s: clamped
	if q := h.Quantile(0); q != 0 {
		t.Errorf("p0 %d", q)
	}
	s := h.Summary()
	if *s.Max != histMaxUs || *s.Min != 0 || *s.P50 != 7 {
		t.Fatalf("max %d min %d p50 %d", *s.Max, *s.Min, *s.P50)
	}
	if e := NewHist().Summary(); e.Count != 0 || e.P50 != nil || e.Max != nil || e.Histogram == nil {
		t.Fatalf("empty summary %+v", e)
	}
}

func TestBucketEdge(t *testing.T) {
	for v, want := range map[int64]int64{0: 0, 1: 1, 100: 100, 999: 999, 1000: 1000, 1001: 1010, 1010: 1010, 1011: 1020,
		99_999: 100_000, 100_000: 100_000, 100_001: 101_000, 60_000_000: 60_000_000, 60_000_001: 60_100_000} {
		if got := bucketEdge(v); got != want {
			t.Errorf("bucketEdge(%d) = %d, want %d", v, got, want)
		}
	}
	// Three significant digits everywhere: width ≤ 1 % of the edge.
	for v := int64(1001); v < 60_000_000; v = v*101/100 + 1 {
		e := bucketEdge(v)
		if e < v || float64(e-v) > 0.01*float64(e) {
			t.Fatalf("edge %d for %d", e, v)
		}
	}
}
