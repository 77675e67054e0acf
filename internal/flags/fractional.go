package flags

import (
	"math"
	"math/bits"
)

// This file is flagd's fractional operation (flagd core v0.13, the
// scheme in force since flagd replaced fractionalEvaluation):
//
//  1. The bucketing value is the rule's first argument when that is a
//     string, otherwise the flag key followed by the targeting key.
//  2. Its 32-bit murmur3 hash (seed 0) is read as a signed int32; the
//     bucket is |hash| / MaxInt32 × 100, a float in [0, 100].
//  3. Each variant owns the range of width 100 × weight / total weight,
//     in the order written; the first range whose end is above the bucket
//     wins. The range ends are summed in float64 in the same order as
//     flagd, so a bucket on a boundary falls on the same side.
//
// Raising a variant's weight only moves the boundary, so a user who was
// in the first 5% is still in the first 25%.

// Bucket returns the bucket in [0, 100] of a bucketing value.
func Bucket(bucketingValue string) float64 { return bucketOf(murmur3(bucketingValue, "")) }

// BucketFor returns the bucket of a targeting key for a flag, as flagd
// computes it when the rule gives no bucketing expression.
func BucketFor(flagKey, targetingKey string) float64 {
	return bucketOf(murmur3(flagKey, targetingKey))
}

func bucketOf(h uint32) float64 {
	return math.Abs(float64(int32(h))) / math.MaxInt32 * 100 //nolint:gosec // flagd reads the hash as an int32: the wrap is the point
}

// pick returns the variant whose range holds bucket, "" when none does
// (flagd's answer too, possible only for the hash -2^31 whose bucket is
// just above 100).
func (f *fractional) pick(bucket float64) string {
	for i, end := range f.rangeEnds {
		if bucket < end {
			return f.variants[i]
		}
	}
	return ""
}

// fractional evaluates a fractional node.
func (e *env) fractional(n *node, vals []value) value {
	f := n.frac
	var h uint32
	if f.bucketBy != nil {
		// vals[0] is the evaluated bucketing expression.
		switch b := vals[0]; b.k {
		case kindString:
			h = murmur3(b.s, "")
		case kindNull:
			h, _ = e.targetingKeyHash()
		default:
			// flagd reads a bucketing expression that yields neither a
			// string nor null as a malformed distribution: null.
			return nullValue
		}
	} else {
		h, _ = e.targetingKeyHash()
	}
	if e.keyMissing {
		return nullValue
	}
	v := stringValue(f.pick(bucketOf(h)))
	v.split = true
	return v
}

// targetingKeyHash hashes flag key + targeting key, or marks the
// evaluation as missing its targeting key.
func (e *env) targetingKeyHash() (uint32, bool) {
	tk, ok := e.data["targetingKey"].(string)
	if !ok {
		e.keyMissing = true
		return 0, false
	}
	return murmur3(e.flagKey, tk), true
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
