namespace Orchestrator.Tests.Infrastructure;

/// <summary>A test class with its own cluster of real processes (<see cref="TestClusters"/>), stopped after its tests.</summary>
public abstract class ProcessClusterTest(ITestOutputHelper output) : IAsyncLifetime
{
    protected ProcessCluster Cluster { get; } = TestClusters.Create(output);

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual Task DisposeAsync() => Cluster.DisposeAsync().AsTask();
}
