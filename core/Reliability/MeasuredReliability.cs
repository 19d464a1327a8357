namespace Orchestrator.Core.Reliability;

/// <summary>A failure as the reliability metrics count it: when, what, and the node it hit (null: not a node's, e.g. a silo).</summary>
public readonly record struct FailureRecord(DateTime At, FailureCategory Category, string? Node);

/// <summary>MTTF of one node, or of the cluster for one category: node-time observed per failure (null: none yet).</summary>
public sealed record MttfLine(string Name, double NodeDays, int Failures, TimeSpan? Mttf);

/// <summary>
/// The cluster's failure rate as the study measures it: infrastructure failures per node-day of observed node time.
/// The job's own causes (user errors) and preemptions are counted but are not failures of the cluster.
/// </summary>
public sealed record MeasuredReliability(double NodeDays, int Failures, IReadOnlyList<MttfLine> Nodes, IReadOnlyList<MttfLine> Categories,
    IReadOnlyDictionary<FailureCategory, int> Counts)
{
    /// <summary>r_f: failures per node-day (0 before any).</summary>
    public double FailuresPerNodeDay => NodeDays > 0 ? Failures / NodeDays : 0;

    public TimeSpan? ClusterMttf => Failures > 0 ? TimeSpan.FromDays(NodeDays / Failures) : null;

    public static bool IsInfrastructure(FailureCategory c) => c is not (FailureCategory.UserError or FailureCategory.Preemption);

    /// <param name="nodeTime">Each node with the time it has been part of the cluster.</param>
    public static MeasuredReliability Measure(IReadOnlyDictionary<string, TimeSpan> nodeTime, IEnumerable<FailureRecord> failures)
    {
        var all = failures.ToList();
        var infra = all.Where(f => IsInfrastructure(f.Category)).ToList();
        var nodeDays = nodeTime.Values.Sum(t => t.TotalDays);
        var nodes = nodeTime.OrderBy(n => n.Key, StringComparer.Ordinal)
            .Select(n => Line(n.Key, n.Value.TotalDays, infra.Count(f => f.Node == n.Key))).ToList();
        var categories = Enum.GetValues<FailureCategory>().Where(IsInfrastructure)
            .Select(c => Line(c.ToString(), nodeDays, infra.Count(f => f.Category == c))).ToList();
        var counts = Enum.GetValues<FailureCategory>().ToDictionary(c => c, c => all.Count(f => f.Category == c));
        return new(nodeDays, infra.Count, nodes, categories, counts);
    }

    static MttfLine Line(string name, double nodeDays, int failures) =>
        new(name, nodeDays, failures, failures > 0 ? TimeSpan.FromDays(nodeDays / failures) : null);
}
