package hammer

// clusterTargets returns the real-cluster targets of the suite.
func clusterTargets() []target { return nil }
