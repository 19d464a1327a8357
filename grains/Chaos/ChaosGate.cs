using System.Collections.Concurrent;
using System.Reflection;
using Microsoft.Extensions.Options;

namespace Orchestrator.Grains;

/// <summary>
/// Refuses every call to a failure-injection entry point (<see cref="ChaosOperationAttribute"/> on its interface or
/// method) unless this silo runs with --allow-chaos: a client, a worker or another grain reaches none of them on a
/// cluster that did not ask for chaos.
/// </summary>
public sealed class ChaosGate(IOptions<OrchestratorOptions> options) : IIncomingGrainCallFilter
{
    readonly ConcurrentDictionary<MethodInfo, bool> _chaos = new();

    public Task Invoke(IIncomingGrainCallContext context)
    {
        if (!options.Value.AllowChaos && context.InterfaceMethod is { } method && _chaos.GetOrAdd(method, IsChaos))
            throw new ChaosDisabledException($"{context.InterfaceName}.{context.MethodName} injects failures and this silo refuses it: chaos is disabled on this cluster; start every silo with --allow-chaos to allow failure injection");
        return context.Invoke();
    }

    static bool IsChaos(MethodInfo method) =>
        method.IsDefined(typeof(ChaosOperationAttribute)) || method.DeclaringType?.IsDefined(typeof(ChaosOperationAttribute)) == true;
}
