package analysis

// Verdict is the outcome of judging one gate, or all of them.
type Verdict string

// Verdicts. For a set of gates: Fail if any gate fails, Pass if all pass,
// Inconclusive otherwise.
const (
	Pass         Verdict = "pass"
	Fail         Verdict = "fail"
	Inconclusive Verdict = "inconclusive"
)

// Result is the judgement of one gate.
type Result struct {
	// Gate describes the gate, e.g. "error_rate <= 0.5%".
	Gate    string  `json:"gate"`
	Verdict Verdict `json:"verdict"`
	// Value is the measured value (a fraction, or seconds for latency).
	Value float64 `json:"value"`
	// Threshold is the limit it was judged against, in the same unit.
	Threshold float64 `json:"threshold"`
	// Detail says what the evidence was, in words.
	Detail string `json:"detail"`
}
