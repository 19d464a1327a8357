using Orchestrator.Contracts;
using Orleans.Runtime;
using Polly;
using Polly.Retry;

namespace Orchestrator.Client;

/// <summary>Which failures are transient (the silo, connection or store went away), and how long to retry them.</summary>
public static class Resilience
{
    /// <summary>Failures that mean "the silo or connection went away", worth retrying once the cluster re-forms.</summary>
    public static bool IsTransient(Exception e) =>
        e is OrleansMessageRejectionException or TimeoutException or SiloUnavailableException or StateStoreUnavailableException
        || FromTheStore(e)
        || (e is OrleansException && e.InnerException is { } inner && IsTransient(inner));

    /// <summary>
    /// A state-store failure (Redis client or Orleans storage provider), on the silo or as a caller receives it: a
    /// grain whose state cannot be read while the store is down fails its activation with the provider's own
    /// exception, which no grain call filter sees.
    /// </summary>
    public static bool FromTheStore(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e.GetType().FullName is { } name && (name.StartsWith("StackExchange.Redis.", StringComparison.Ordinal) || name.StartsWith("Orleans.Persistence.", StringComparison.Ordinal)))
                return true;
        return false;
    }

    /// <summary>Exponential backoff with jitter for about <paramref name="budget"/>, then the last error surfaces.</summary>
    public static ResiliencePipeline Retry(TimeSpan budget) =>
        new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = TimeSpan.FromSeconds(2),
                MaxRetryAttempts = Math.Max(1, (int)(budget.TotalSeconds / 1.5)),
            })
            .Build();
}

/// <summary>
/// The one retry seam of a client (worker, CLI, test): every grain call it makes that fails transiently is sent again,
/// with exponential backoff and jitter, for up to <see cref="RetryBudget"/>; then the last error surfaces. Calls are
/// safe to resend because the cluster's calls are idempotent (submissions by job id, shard updates by step, worker
/// reports fenced by assignment epoch). One-way calls and methods marked <see cref="NotRetriedAttribute"/> (the
/// caller repeats them on its own schedule) are sent once.
/// </summary>
public sealed class TransientCallRetry(TimeSpan retryBudget) : IOutgoingGrainCallFilter
{
    readonly ResiliencePipeline _pipeline = Resilience.Retry(retryBudget);

    public TimeSpan RetryBudget => retryBudget;

    public Task Invoke(IOutgoingGrainCallContext context)
    {
        var method = context.InterfaceMethod;
        if (method is null || method.IsDefined(typeof(Orleans.Concurrency.OneWayAttribute), true) || method.IsDefined(typeof(NotRetriedAttribute), true))
            return context.Invoke();
        return _pipeline.ExecuteAsync(static async (c, _) => await c.Invoke(), context).AsTask();
    }
}

/// <summary>Says once that the cluster is unreachable and once that it answers again, however many calls fail between.</summary>
public sealed class ReachabilityLog(Action<string> report)
{
    DateTime? _downSince;

    /// <summary>How long the cluster has been unreachable (zero while it answers).</summary>
    public TimeSpan Unreachable => _downSince is { } since ? DateTime.UtcNow - since : TimeSpan.Zero;

    public void Failed(Exception e)
    {
        if (_downSince is not null) return;
        _downSince = DateTime.UtcNow;
        report($"the cluster is unreachable ({e.GetBaseException().Message}); still trying");
    }

    public void Answered()
    {
        if (_downSince is null) return;
        _downSince = null;
        report("the cluster answers again");
    }
}
