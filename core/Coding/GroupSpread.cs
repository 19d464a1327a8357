namespace Orchestrator.Core.Coding;

/// <summary>
/// Where a coding group's k + r members live. One member per silo is the protection the code promises: losing a
/// silo erases one member. Two members on one silo (there were fewer live silos than members when one was placed)
/// make that silo's loss two erasures, more than r = 1 can rebuild; once enough silos live again, members move.
/// </summary>
public static class GroupSpread
{
    public sealed record Move(int Member, string From, string To);

    /// <summary>Whether no live silo holds two members (members on dead silos are placed again when next used).</summary>
    public static bool IsSpread(IReadOnlyDictionary<int, string> placements, IReadOnlyCollection<string> live) =>
        placements.Values.Where(live.Contains).GroupBy(s => s).All(g => g.Count() == 1);

    /// <summary>
    /// The moves that give members a silo of their own, as far as the live silos allow: from the silo holding the
    /// most members (its highest-numbered member first) to a live silo holding none, in ordinal order of silos.
    /// </summary>
    public static IReadOnlyList<Move> Plan(IReadOnlyDictionary<int, string> placements, IReadOnlyCollection<string> live)
    {
        var bySilo = placements.Where(p => live.Contains(p.Value)).GroupBy(p => p.Value)
            .ToDictionary(g => g.Key, g => g.Select(p => p.Key).Order().ToList());
        var free = new Queue<string>(live.Where(s => !bySilo.ContainsKey(s)).Distinct().Order(StringComparer.Ordinal));
        var moves = new List<Move>();
        while (free.Count > 0)
        {
            var crowded = bySilo.Where(kv => kv.Value.Count > 1)
                .OrderByDescending(kv => kv.Value.Count).ThenBy(kv => kv.Key, StringComparer.Ordinal).FirstOrDefault();
            if (crowded.Value is null) break;
            var member = crowded.Value[^1];
            crowded.Value.RemoveAt(crowded.Value.Count - 1);
            var to = free.Dequeue();
            bySilo[to] = [member];
            moves.Add(new Move(member, crowded.Key, to));
        }
        return moves;
    }
}
