package rollout

import (
	"fmt"
	"math"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

// analysisOf is a with only its i-th gate.
func analysisOf(a AnalysisSpec, i int) AnalysisSpec {
	a.Gates = a.Gates[i : i+1]
	return a
}

// EvidenceNeed is the least traffic a bake step needs for its gates to be
// able to pass within its bake time.
type EvidenceNeed struct {
	// Step is the step's index in the plan, Description says what it is.
	Step        int    `json:"step"`
	Description string `json:"description"`
	// Gate is the gate that needs the most canary requests, Requests how
	// many (with none failing or slow).
	Gate     string `json:"gate"`
	Requests int    `json:"requests"`
	// Share is the share of the router's traffic the new release gets at
	// this step, RPS the router's request rate it takes to send it
	// Requests within the bake.
	Share float64 `json:"share"`
	RPS   float64 `json:"rps"`
}

// EvidenceNeeds returns, for each bake of a stage's plan that must pass
// its gates (canary weights, blue-green observe, rolling batches beside
// old instances), the traffic it needs: for an absolute error_rate gate,
// the least number of requests, none failing, with which the judge passes
// it (analysis.RequestsToPass: about 175 for 1% at 95%); for a latency
// gate, ln(1-pass_confidence)/ln(1-share) requests none of them slow, as
// an estimate (the judge also needs the stable's traffic); and never fewer
// than min_requests.
func EvidenceNeeds(st *Spec) []EvidenceNeed {
	a := st.Analysis
	alpha := 1 - a.PassConfidence
	need, gate := a.MinRequests, fmt.Sprintf("min_requests %d", a.MinRequests)
	opts := JudgeOptions(a, planSteps(st, planOptions{}))
	for i, g := range a.Gates {
		// An absolute error_rate gate asks the judge itself.
		if n, ok := analysis.RequestsToPass(Gates(analysisOf(a, i))[0], opts); ok {
			if n > need {
				need, gate = n, fmt.Sprintf("error_rate <= %g%%", *g.Max*100)
			}
			continue
		}
		var p float64 // the allowed share of failed (or slow) requests
		switch {
		case g.Metric == MetricErrorRate && g.Max != nil:
			p = *g.Max
		case g.Metric == MetricLatencyP50:
			p = 0.5
		case g.Metric == MetricLatencyP95:
			p = 0.05
		case g.Metric == MetricLatencyP99:
			p = 0.01
		}
		if p <= 0 || p >= 1 || alpha <= 0 {
			continue
		}
		if n := int(math.Ceil(math.Log(alpha) / math.Log(1-p))); n > need {
			need, gate = n, g.Metric
			if g.Max != nil && g.Metric == MetricErrorRate {
				gate = fmt.Sprintf("error_rate <= %g%%", *g.Max*100)
			}
		}
	}
	var out []EvidenceNeed
	replaced := 0
	for i, s := range planSteps(st, planOptions{}) {
		var share float64
		switch s.Kind {
		case StepWeight:
			share = float64(s.Weight) / 100
		case StepObserve:
			share = 1
		case StepBatch:
			replaced += s.Count
			if replaced >= st.Instances {
				continue // no old instance left to compare with: the batch does not wait for a pass
			}
			share = float64(replaced) / float64(st.Instances)
		default:
			continue
		}
		if share <= 0 || s.Duration <= 0 {
			continue
		}
		out = append(out, EvidenceNeed{
			Step: i, Description: describeStep(s), Gate: gate, Requests: need, Share: share,
			RPS: float64(need) / share / s.Duration.Seconds(),
		})
	}
	return out
}

// EvidenceWarnings returns a warning for each bake of the stage that the
// traffic it expects (analysis.expected_rps) cannot bring to the evidence
// its gates need; none when no traffic is expected.
func EvidenceWarnings(st *Spec) []string {
	rps := st.Analysis.ExpectedRPS
	if rps <= 0 {
		return nil
	}
	var out []string
	for _, n := range EvidenceNeeds(st) {
		if n.RPS <= rps {
			continue
		}
		bake := time.Duration(float64(n.Requests) / n.Share / rps * float64(time.Second)).Round(time.Second)
		out = append(out, fmt.Sprintf("%s: step %d (%s) needs %d canary requests to pass %s, %.3g requests/s through the router at %.0f%%; at the expected %g/s it would need a bake of %s: with on_inconclusive: %s it will %s",
			st.Name, n.Step+1, n.Description, n.Requests, n.Gate, n.RPS, n.Share*100, rps, bake, st.Analysis.OnInconclusive, inconclusiveOutcome(st.Analysis.OnInconclusive)))
	}
	return out
}

func inconclusiveOutcome(policy string) string {
	switch policy {
	case InconclusiveRollback:
		return "roll a healthy release back"
	case InconclusiveExtend:
		return "bake longer than planned"
	default:
		return "pause for a person"
	}
}
