using Orleans.Persistence.Redis;

namespace Orchestrator.Tests;

/// <summary>
/// A grain that cannot read its state while the store is down fails its activation with the storage provider's own
/// exception, which reaches the caller (a worker) as is: it must be retried there, not fail the job.
/// </summary>
public sealed class ResilienceTests
{
    [Fact]
    public void StoreFailures_AreTransient_EvenWrapped_AndOtherErrorsAreNot()
    {
        var activation = new RedisStorageException("Failed to read grain state for job with ID job/x. RedisTimeoutException: Timeout");
        Assert.True(Resilience.IsTransient(activation));
        Assert.True(Resilience.IsTransient(new OrleansException("activation failed", activation)));
        Assert.True(Resilience.IsTransient(new StateStoreUnavailableException("the state store did not answer")));
        Assert.False(Resilience.IsTransient(new InvalidOperationException("a bug")));
        Assert.False(Resilience.IsTransient(new ArgumentException("invalid spec")));
    }

    [Fact]
    public void TheWorker_CanReadTheStoresExceptions()
    {
        // Without the provider's assembly the worker got TypeLoadException for the silo's answer and failed the rank.
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(Repo.Worker)!, "Orleans.Persistence.Redis.dll")));
        var loaded = System.Reflection.Assembly.LoadFrom(Path.Combine(Path.GetDirectoryName(Repo.Worker)!, "Orleans.Persistence.Redis.dll"));
        var exception = (Exception)Activator.CreateInstance(loaded.GetType("Orleans.Persistence.Redis.RedisStorageException", throwOnError: true)!)!;
        Assert.True(Resilience.FromTheStore(exception));
    }
}
