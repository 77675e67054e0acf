package dora

import "time"

// BandSource names where the performance bands come from.
const BandSource = "DORA Accelerate State of DevOps Report 2023"

// Band levels, best first.
const (
	Elite  = "elite"
	High   = "high"
	Medium = "medium"
	Low    = "low"
)

// Band is the 2023 performance cluster a number falls in.
type Band struct {
	// Level is elite, high, medium or low; "" when there is no number or
	// no published band.
	Level string `json:"level,omitempty"`
	// Label is the band's range in words, as the report published it.
	Label string `json:"label,omitempty"`
}

// FrequencyBand bands deploy-days per week: deploying on every working day
// (5 or more deploy-days a week) is on demand; at least one a week is
// between daily and weekly; at least one every four weeks is between
// weekly and monthly; fewer is less than monthly.
func FrequencyBand(daysPerWeek float64) Band {
	switch {
	case daysPerWeek >= 5:
		return Band{Elite, "on demand (deploys every working day or more)"}
	case daysPerWeek >= 1:
		return Band{High, "between once per day and once per week"}
	case daysPerWeek >= 0.25:
		return Band{Medium, "between once per week and once per month"}
	default:
		return Band{Low, "less than once per month"}
	}
}

// LeadTimeBand bands the median change lead time.
func LeadTimeBand(d time.Duration) Band {
	switch {
	case d < 24*time.Hour:
		return Band{Elite, "less than one day"}
	case d < 7*24*time.Hour:
		return Band{High, "between one day and one week"}
	case d < 30*24*time.Hour:
		return Band{Medium, "between one week and one month"}
	default:
		return Band{Low, "more than one month"}
	}
}

// ChangeFailBand bands the change fail rate (0 to 1).
func ChangeFailBand(rate float64) Band {
	switch {
	case rate <= 0.05:
		return Band{Elite, "0-5%"}
	case rate <= 0.10:
		return Band{High, "5-10%"}
	case rate <= 0.15:
		return Band{Medium, "10-15%"}
	default:
		return Band{Low, "more than 15%"}
	}
}

// RecoveryBand bands the median failed deployment recovery time.
func RecoveryBand(d time.Duration) Band {
	switch {
	case d < time.Hour:
		return Band{Elite, "less than one hour"}
	case d < 24*time.Hour:
		return Band{High, "less than one day"}
	case d < 7*24*time.Hour:
		return Band{Medium, "between one day and one week"}
	default:
		return Band{Low, "more than one week"}
	}
}

// noBand is the band of the deployment rework rate, which DORA added in
// 2024 without published clusters.
var noBand = Band{Label: "no band published (key added in 2024)"}
