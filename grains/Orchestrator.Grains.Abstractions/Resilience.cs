using Orleans.Runtime;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;

namespace Orchestrator.Grains;

/// <summary>Retry policies for calls that cross processes, for the failures Orleans reports as transient.</summary>
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
/// A caller's line to the cluster when it may be lost for a while (a worker's heartbeats, the CLI following jobs):
/// transient failures are retried with backoff and jitter for up to <c>budget</c>, and a circuit breaker opens after
/// every call in a few seconds failed, so that the caller says once that the cluster is unreachable (and once that
/// it answers again) instead of logging a storm of failed retries; while it is open, calls fail at once and are
/// tried again every <see cref="BreakDuration"/>.
/// </summary>
public static class ClusterLine
{
    public static readonly TimeSpan BreakDuration = TimeSpan.FromSeconds(3);

    public static ResiliencePipeline Create(TimeSpan budget, Action<string> report, bool retry = true)
    {
        var builder = new ResiliencePipelineBuilder();
        if (retry)
        {
            builder.AddTimeout(budget);
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(e => Resilience.IsTransient(e) || e is BrokenCircuitException),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = BreakDuration,
                MaxRetryAttempts = int.MaxValue,
            });
        }
        return builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(Resilience.IsTransient),
            FailureRatio = 1.0,
            MinimumThroughput = 3,
            SamplingDuration = TimeSpan.FromSeconds(10),
            BreakDuration = BreakDuration,
            OnOpened = a =>
            {
                report($"the cluster is unreachable ({a.Outcome.Exception?.GetBaseException().Message}); trying again every {BreakDuration.TotalSeconds:0} s");
                return ValueTask.CompletedTask;
            },
            OnClosed = _ =>
            {
                report("the cluster answers again");
                return ValueTask.CompletedTask;
            },
        }).Build();
    }
}

/// <summary>
/// The cluster's state store (Redis) did not answer a grain's read or write; the call can be retried once it is
/// back. Silos raise this in place of the storage provider's own exceptions, which clients could not deserialize
/// (they do not carry the provider's assembly): such a reply would be dropped and the caller would wait for its
/// whole response timeout.
/// </summary>
[GenerateSerializer, Alias("state-store-unavailable")]
public sealed class StateStoreUnavailableException(string message) : Exception(message);
