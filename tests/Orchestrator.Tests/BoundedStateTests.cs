namespace Orchestrator.Tests;

/// <summary>
/// State that grew without bound: every GET of a random job id activated a grain (3,000 requests, 3,000 activations),
/// incidents kept unbounded text, finished jobs could never be removed.
/// </summary>
public sealed class BoundedStateTests : GrainTestBase
{
    [Fact]
    public async Task ReadingUnknownJobIds_ActivatesNoGrain()
    {
        var queries = new ClusterQueries(Grains);
        var management = Grains.GetGrain<IManagementGrain>(0);
        await Assert.ThrowsAsync<KeyNotFoundException>(() => queries.Job("warm-up"));
        var before = await management.GetTotalActivationCount();

        for (int i = 0; i < 300; i++)
            await Assert.ThrowsAsync<KeyNotFoundException>(() => queries.Job($"random-{Guid.NewGuid():n}"));
        await Assert.ThrowsAsync<KeyNotFoundException>(() => queries.Job(new string('x', 100_000)));

        var after = await management.GetTotalActivationCount();
        Assert.True(after - before < 20, $"{after - before} activations for 300 unknown ids");
    }

    [Fact]
    public async Task AnIncident_KeepsBoundedText_AndABoundedListOfJobs()
    {
        var log = Grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster);
        var huge = Incident.JobFailed("n1", "j", new JobFailure(FailureCause.WorkerError, new string('y', 1_000_000))) with
        {
            Jobs = Enumerable.Range(0, 5000).Select(i => $"job-{i}").ToList(),
        };

        await log.Append(huge);

        var kept = (await log.List(10_000)).Last(i => i.Kind == IncidentKind.JobFailed && i.NodeId == "n1");
        Assert.True(kept.Detail!.Length <= Incident.MaxDetailChars + 1);
        Assert.Equal(Incident.MaxJobs + 1, kept.Jobs.Count);
        Assert.Equal("… and 4900 more", kept.Jobs[^1]);
    }

    [Fact]
    public async Task AnEndedJob_CanBeDeleted_ARunningOneIsRefused()
    {
        var (ended, waiting) = (NewId("ended"), NewId("waiting"));
        await Submit(ended);
        await Submit(waiting);
        await Grains.GetGrain<IJobGrain>(ended).Cancel("test");

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => Grains.GetGrain<IJobGrain>(waiting).Delete());
        Assert.Contains("cancel it first", refused.Message);
        await Grains.GetGrain<IJobGrain>(ended).Delete();

        var index = Grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster);
        Assert.False(await index.Contains(ended));
        Assert.True(await index.Contains(waiting));
        Assert.DoesNotContain(await index.List(), j => j.JobId == ended);
        await Assert.ThrowsAsync<KeyNotFoundException>(() => Grains.GetGrain<IJobGrain>(ended).GetInfo());
        await Grains.GetGrain<IJobGrain>(waiting).Cancel("test");
    }
}
