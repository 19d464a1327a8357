using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace Orchestrator.Grains;

/// <summary>Places every shard of a coding group on a different silo (see <see cref="ICodingGroupGrain"/>).</summary>
[GenerateSerializer, Immutable, Alias("coding-group-placement")]
public sealed class CodingGroupPlacement : PlacementStrategy;

[AttributeUsage(AttributeTargets.Class)]
public sealed class CodingGroupPlacementAttribute() : PlacementAttribute(new CodingGroupPlacement());

/// <summary>
/// Asks the shard's coding group where it goes (key "job/group/member"): the group remembers every member's silo
/// and puts a new or re-placed member on a live silo that holds none of its live siblings.
/// </summary>
public sealed class CodingGroupPlacementDirector(IGrainFactory grains) : IPlacementDirector
{
    public async Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString()!;
        var cut = key.LastIndexOf('/');
        var candidates = context.GetCompatibleSilos(target).OrderBy(s => s.ToParsableString(), StringComparer.Ordinal).ToArray();
        return await grains.GetGrain<ICodingGroupGrain>(key[..cut]).Place(int.Parse(key[(cut + 1)..]), target.GrainIdentity, candidates);
    }
}
