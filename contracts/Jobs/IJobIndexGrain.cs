namespace Orchestrator.Contracts;

/// <summary>
/// The list of jobs with their latest summary (key <see cref="SchedulerKeys.Cluster"/>), so that listing never
/// scans storage. Job grains write to it; it never calls out.
/// </summary>
[Alias("job-index")]
public interface IJobIndexGrain : IGrainWithStringKey
{
    /// <summary>Records a new job and returns its submission sequence number (stable on repeats).</summary>
    [Alias("add")] Task<long> Add(string jobId);

    [Alias("update")] Task Update(JobInfo info);

    [Alias("list")] Task<IReadOnlyList<JobInfo>> List();

    /// <summary>Whether the cluster knows the job: readers ask here first, so an unknown id never activates a job grain.</summary>
    [Alias("contains")] Task<bool> Contains(string jobId);

    /// <summary>Forgets a deleted job.</summary>
    [Alias("remove")] Task Remove(string jobId);
}
