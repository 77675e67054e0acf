package server

import "github.com/prometheus/client_golang/prometheus"

// unchecked registers a collector without describing its metrics up front.
// Every environment's router exposes the same metric names with its env
// label, which a registry refuses from two described collectors; each
// router's series still differ by that label, so they never clash.
type unchecked struct{ c prometheus.Collector }

// Describe sends nothing, which makes the collector unchecked.
func (unchecked) Describe(chan<- *prometheus.Desc) {}

// Collect delegates to the router's collector.
func (u unchecked) Collect(ch chan<- prometheus.Metric) { u.c.Collect(ch) }
