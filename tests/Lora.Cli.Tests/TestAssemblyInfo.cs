// CLI commands share one process-wide torch random generator (adapter init, dropout, data order, sampling); `lora
// train` runs are compared bit for bit (resume equivalence), so no two commands may draw from it at the same time.
// The whole suite takes seconds: run its tests one after another.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
