namespace Orchestrator.Contracts;

/// <summary>
/// The cluster's state store (Redis) did not answer a grain's read or write; the call can be retried once it is
/// back. Silos raise this in place of the storage provider's own exceptions, which clients could not deserialize
/// (they do not carry the provider's assembly): such a reply would be dropped and the caller would wait for its
/// whole response timeout.
/// </summary>
[GenerateSerializer, Alias("state-store-unavailable")]
public sealed class StateStoreUnavailableException(string message) : Exception(message);

/// <summary>
/// A method its caller repeats on its own schedule (heartbeats, progress reports): a client's retry filter sends it
/// once, so that a lost call is simply superseded by the next one.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class NotRetriedAttribute : Attribute;
