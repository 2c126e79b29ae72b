// Latency histograms. HdrHistogram (1 µs .. 60 s, 3 significant digits) answers the percentiles;
// exact min, max and sum are kept beside it because the max is the evidence of a stall and should
// not be rounded to a bucket edge. The exported buckets are separate exact counts on round edges,
// also 3 significant digits (1 µs steps to 1 ms, then …, 99.9 ms, 100 ms, 101 ms …), so a
// reader's "how many took more than 100 ms" is exact rather than split across an HDR bucket.
package main

import (
	"sort"
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const histMaxUs = 60_000_000 // 60 s: larger values are recorded as 60 s

// Hist is safe for concurrent use (one mutex: a few hundred ns per record, far below 100k/s).
type Hist struct {
	mu       sync.Mutex
	h        *hdrhistogram.Histogram
	n        int64
	sum      float64
	min, max int64
	buckets  map[int64]int64
}

func NewHist() *Hist {
	return &Hist{h: hdrhistogram.New(1, histMaxUs, 3), buckets: map[int64]int64{}}
}

// bucketEdge is the upper edge (inclusive) of the exported bucket holding v µs.
func bucketEdge(v int64) int64 {
	if v <= 1000 {
		return max(v, 0)
	}
	p := int64(1) // step: 10^(digits(v-1) - 3), so three significant digits
	for x := v - 1; x >= 1000; x /= 10 {
		p *= 10
	}
	return (v + p - 1) / p * p
}

func (h *Hist) Record(us int64) {
	us = min(max(us, 0), histMaxUs)
	h.mu.Lock()
	defer h.mu.Unlock()
	_ = h.h.RecordValue(us) // cannot fail: clamped to the trackable range
	if h.n == 0 || us < h.min {
		h.min = us
	}
	if us > h.max {
		h.max = us
	}
	h.n++
	h.sum += float64(us)
	h.buckets[bucketEdge(us)]++
}

// Quantile q in [0,100]; 0 when empty.
func (h *Hist) Quantile(q float64) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	return min(h.h.ValueAtQuantile(q), h.max)
}

type Bucket struct {
	LeUs  int64 `json:"leUs"`
	Count int64 `json:"count"`
}

// Summary is the JSON shape of responseTimeUs / serviceTimeUs; percentile fields are null when count is 0.
type Summary struct {
	Count     int64    `json:"count"`
	Min       *int64   `json:"min"`
	Mean      *float64 `json:"mean"`
	P50       *int64   `json:"p50"`
	P90       *int64   `json:"p90"`
	P99       *int64   `json:"p99"`
	P999      *int64   `json:"p999"`
	Max       *int64   `json:"max"`
	Histogram []Bucket `json:"histogram"`
}

// LagSummary is sendLagUs.
type LagSummary struct {
	P50 *int64 `json:"p50"`
	P99 *int64 `json:"p99"`
	Max *int64 `json:"max"`
}

func ptr[T any](v T) *T { return &v }

func (h *Hist) Summary() Summary {
	s := Summary{Histogram: []Bucket{}}
	h.mu.Lock()
	s.Count = h.n
	h.mu.Unlock()
	if s.Count == 0 {
		return s
	}
	s.P50, s.P90, s.P99, s.P999 = ptr(h.Quantile(50)), ptr(h.Quantile(90)), ptr(h.Quantile(99)), ptr(h.Quantile(99.9))
	h.mu.Lock()
	defer h.mu.Unlock()
	s.Min, s.Max = ptr(h.min), ptr(h.max)
	s.Mean = ptr(float64(int64(h.sum/float64(h.n)*10)) / 10)
	for le, c := range h.buckets {
		s.Histogram = append(s.Histogram, Bucket{le, c})
	}
	sort.Slice(s.Histogram, func(i, j int) bool { return s.Histogram[i].LeUs < s.Histogram[j].LeUs })
	return s
}

func (h *Hist) Lag() LagSummary {
	h.mu.Lock()
	n, mx := h.n, h.max
	h.mu.Unlock()
	if n == 0 {
		return LagSummary{}
	}
	return LagSummary{P50: ptr(h.Quantile(50)), P99: ptr(h.Quantile(99)), Max: ptr(mx)}
}
