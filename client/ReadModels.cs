using Orchestrator.Contracts;
using Orchestrator.Core.Reliability;

namespace Orchestrator.Client;

/// <summary>A job with its events, time line and curve: everything the job page shows.</summary>
public sealed record JobDetail(JobInfo Info, IReadOnlyList<JobEvent> Events, JobHistory History, IReadOnlyList<IncidentView> Incidents);

/// <summary>A fused array (or a job alone, width 1) on one device: its members now, and their combined throughput.</summary>
/// <param name="Utilization">Members still training over the width the array was placed with (members that end early
/// leave their share of the device idle until the array ends).</param>
public sealed record ArrayView(string ArrayId, string NodeId, string Device, int Width, IReadOnlyList<ArrayMember> Members, double SamplesPerSecond, double Utilization);

public sealed record ArrayMember(string JobId, string Name, JobState State, long Step, long TotalSteps, double SamplesPerSecond);

/// <summary>An incident with what it cost each job it names: the time until that job trained again, and the steps it redid.</summary>
public sealed record IncidentView(Incident Incident, IReadOnlyList<IncidentJobImpact> Jobs);

public sealed record IncidentJobImpact(string JobId, double? RecoverySeconds, long LostSteps);

/// <summary>The paper's measured numbers, for comparison beside this cluster's.</summary>
public sealed record StudyNumbers(string Cluster, int Gpus, double FailuresPerThousandNodeDays, double JobMttfHoursAt16kGpus);

public sealed record ProjectionSet(string Source, double FailuresPerThousandNodeDays, IReadOnlyList<Projection> Rows);

/// <summary>The reliability page: this cluster's measured failure rate and MTTF, each job's ETTR, and projections.</summary>
public sealed record ReliabilityReport(
    DateTime At,
    double NodeDays,
    int Failures,
    double FailuresPerThousandNodeDays,
    double? ClusterMttfHours,
    IReadOnlyList<MttfLine> Nodes,
    IReadOnlyList<MttfLine> Categories,
    IReadOnlyDictionary<FailureCategory, int> IncidentCounts,
    IReadOnlyList<JobEttr> Jobs,
    double? MedianRecoverySeconds,
    TimeSpan CheckpointWrite,
    TimeSpan Restart,
    TimeSpan Rebuild,
    IReadOnlyList<ProjectionSet> Projections,
    IReadOnlyList<StudyNumbers> Study);

public sealed record JobEttr(string JobId, string Name, JobState State, JobTime Time);
