package flags

import (
	"math"
	"math/bits"
)

// This file is flagd's fractional operation as flagd core v0.16 has it
// (the "v2" bucketing of the flagd-testbed suites; flagd offers no other):
//
//  1. The operation's arguments are evaluated first, nested arrays
//     included, so a variant name or a weight may itself be an expression.
//  2. The bucketing value is the first argument when it evaluates to a
//     string; otherwise (null, or a distribution) it is the flag key
//     followed by the targeting key. No targeting key, an empty one or one
//     that is not a string gives null: the flag's default.
//  3. Each distribution is [variant] or [variant, weight]: the variant a
//     string, boolean, number or null; the weight a whole number (1 when
//     absent, 0 when negative). Weights are relative shares.
//  4. The bucket is (murmur3(value) × total weight) >> 32, an integer in
//     [0, total); the first variant whose cumulative weight is above the
//     bucket wins. All weights 0 gives null.
//
// Raising a variant's weight only moves the boundary, so a user who was
// in the first 5% is still in the first 25%.

// maxWeight bounds a weight and the sum of the weights, as in flagd.
const maxWeight = math.MaxInt32

// Bucket returns the bucket of a bucketing value as a percentage in
// [0, 100): a variant with p% of the weight, first in the list, is chosen
// exactly when the bucket is below p.
func Bucket(bucketingValue string) float64 { return bucketPercent(murmur3(bucketingValue, "")) }

// BucketFor returns the bucket of a targeting key for a flag (see Bucket),
// as flagd computes it when the rule gives no bucketing expression.
func BucketFor(flagKey, targetingKey string) float64 {
	return bucketPercent(murmur3(flagKey, targetingKey))
}

func bucketPercent(h uint32) float64 { return float64(h) / (1 << 32) * 100 }

// distribution is the weighted variants of a fractional operation.
type distribution struct {
	variants []value
	weights  []uint64
	total    uint64
}

// pick returns the variant of a hash, null when the weights are all 0.
func (d *distribution) pick(h uint32) value {
	if d.total == 0 {
		return nullValue
	}
	bucket := (uint64(h) * d.total) >> 32
	var end uint64
	for i, w := range d.weights {
		end += w
		if bucket < end {
			return d.variants[i]
		}
	}
	return nullValue
}

// parseDistributions reads evaluated distributions as flagd does; false
// means flagd rejects them and the operation gives null.
func parseDistributions(dists []value) (distribution, bool) {
	var d distribution
	for _, dv := range dists {
		if dv.k != kindArray || len(dv.arr) == 0 {
			return d, false
		}
		v := fromAny(dv.arr[0])
		switch v.k {
		case kindString, kindBool, kindNumber, kindNull:
		default:
			return d, false
		}
		w := int64(1)
		if len(dv.arr) >= 2 {
			switch x := fromAny(dv.arr[1]); x.k {
			case kindNull:
			case kindNumber:
				// flagd's test of a whole number: it round-trips through
				// int64, so a number beyond int64's range is not one.
				w = int64(x.n)
				if x.n != float64(w) || w > maxWeight {
					return d, false
				}
			default:
				return d, false
			}
		}
		if w < 0 {
			w = 0
		}
		d.variants = append(d.variants, v)
		d.weights = append(d.weights, uint64(w)) //nolint:gosec // w >= 0 here
		d.total += uint64(w)                     //nolint:gosec // w >= 0 here
	}
	if d.total > maxWeight {
		return d, false
	}
	return d, true
}

// fractional evaluates a fractional node whose arguments are vals.
func (e *env) fractional(n *node, vals []value, single value, isList bool) value {
	if !isList || len(vals) == 0 {
		return nullValue
	}
	var (
		h     uint32
		dists = vals
	)
	switch first := vals[0]; first.k {
	case kindString:
		h, dists = murmur3(first.s, ""), vals[1:]
	default:
		if first.k == kindNull {
			dists = vals[1:]
		}
		tk, ok := e.data["targetingKey"].(string)
		if !ok || tk == "" {
			return nullValue
		}
		h = murmur3(e.flagKey, tk)
	}
	if f := n.frac; f != nil && len(dists) == len(f.variants) {
		// The distributions were constant: precompiled.
		return f.pick(h)
	}
	d, ok := parseDistributions(dists)
	if !ok {
		return nullValue
	}
	return d.pick(h)
}

// murmur3 is the 32-bit MurmurHash3 (x86_32, seed 0) of a followed by b,
// computed without concatenating them.
func murmur3(a, b string) uint32 {
	const (
		c1 = 0xcc9e2d51
		c2 = 0x1b873593
	)
	var (
		h     uint32
		tail  [4]byte
		ntail int
	)
	mix := func(k uint32) {
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	feed := func(s string) {
		i := 0
		for ntail > 0 && ntail < 4 && i < len(s) {
			tail[ntail] = s[i]
			ntail++
			i++
		}
		if ntail == 4 {
			mix(uint32(tail[0]) | uint32(tail[1])<<8 | uint32(tail[2])<<16 | uint32(tail[3])<<24)
			ntail = 0
		}
		for ; i+4 <= len(s); i += 4 {
			mix(uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24)
		}
		for ; i < len(s); i++ {
			tail[ntail] = s[i]
			ntail++
		}
	}
	feed(a)
	feed(b)
	var k uint32
	switch ntail {
	case 3:
		k ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(tail[0])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(len(a) + len(b)) //nolint:gosec // murmur3 mixes in the length modulo 2^32
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
