using Orleans.Runtime;
using Polly;
using Polly.Retry;

namespace Orchestrator.Grains;

/// <summary>Retry policies for calls that cross processes, for the failures Orleans reports as transient.</summary>
public static class Resilience
{
    /// <summary>Failures that mean "the silo or connection went away", worth retrying once the cluster re-forms.</summary>
    public static bool IsTransient(Exception e) =>
        e is OrleansMessageRejectionException or TimeoutException or SiloUnavailableException or StateStoreUnavailableException
        || (e is OrleansException && e.InnerException is { } inner && IsTransient(inner));

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
/// The cluster's state store (Redis) did not answer a grain's read or write; the call can be retried once it is
/// back. Silos raise this in place of the storage provider's own exceptions, which clients could not deserialize
/// (they do not carry the provider's assembly): such a reply would be dropped and the caller would wait for its
/// whole response timeout.
/// </summary>
[GenerateSerializer, Alias("state-store-unavailable")]
public sealed class StateStoreUnavailableException(string message) : Exception(message);
