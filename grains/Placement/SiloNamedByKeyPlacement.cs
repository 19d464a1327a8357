using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace Orchestrator.Grains;

/// <summary>Places a grain on the silo its key names (a parsable silo address).</summary>
[GenerateSerializer, Immutable, Alias("silo-named-by-key")]
public sealed class SiloNamedByKey : PlacementStrategy;

[AttributeUsage(AttributeTargets.Class)]
public sealed class SiloNamedByKeyPlacementAttribute() : PlacementAttribute(new SiloNamedByKey());

public sealed class SiloNamedByKeyDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silo = SiloAddress.FromParsableString(target.GrainIdentity.Key.ToString()!);
        if (!context.GetCompatibleSilos(target).Contains(silo)) throw new InvalidOperationException($"silo {silo} is not active");
        return Task.FromResult(silo);
    }
}
