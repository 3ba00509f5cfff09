using Xunit;

// These tests start brokers, learners and child processes that compete for the same two cores.
// One class runs at a time, so that timeouts measure the code under test, not the neighbours.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
