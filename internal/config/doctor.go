package config

// DoctorGates are the seven gates shipgate doctor looks for, in the order
// it reports them; doctor.required names some of them.
var DoctorGates = []string{"release_day", "iac", "staging", "browser_tests", "canary", "rollback", "monday_report"}
