using Orchestrator.Core.Specs;

namespace Orchestrator.Cli.Jobs;

/// <summary>Reads job specs with their overrides and sweeps, and submits them as one batch (so a sweep can fuse).</summary>
public static class JobSubmitter
{
    public static IReadOnlyList<JobSpec> LoadSpecs(FileInfo file, string[] sets, string[] sweeps, bool checkFiles)
    {
        if (!file.Exists) throw new UsageException($"spec file '{file.FullName}' does not exist");
        var text = File.ReadAllText(file.FullName);
        IReadOnlyList<SpecVariants.Variant> variants;
        try { variants = SpecVariants.Expand(JobSpecParser.ParseDocument(text), sets, sweeps); }
        catch (SpecFormatException e) { throw new UsageException(e.Message); }
        var options = new SpecValidationOptions { CheckFiles = checkFiles };
        var specs = new List<JobSpec>();
        var problems = new List<string>();
        foreach (var v in variants)
        {
            try { specs.Add(JobSpecParser.FromNode(SpecVariants.WithNameSuffix(v.Spec, v.NameSuffix), options)); }
            catch (SpecValidationException e)
            {
                var label = v.NameSuffix.Length > 0 ? $" (variant {v.NameSuffix.TrimStart('-')})" : "";
                problems.AddRange(e.Errors.Select(err => $"{file.Name}{label}: {err}"));
            }
        }
        if (problems.Count > 0) throw new UsageException("invalid job spec; nothing was submitted:" + Environment.NewLine + string.Join(Environment.NewLine, problems.Distinct().Select(x => "  " + x)));
        return specs;
    }

    /// <summary>The job's name and 40 random bits: one collision in about a trillion pairs of jobs of one name (20 bits
    /// made 39% of 1,000 resubmissions of one name collide with an earlier one).</summary>
    public static string NewJobId(string name) => $"{name}-{Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(5)).ToLowerInvariant()}";

    public static async Task<IReadOnlyList<string>> SubmitAll(IGrainFactory grains, IReadOnlyList<JobSpec> specs, CancellationToken ct)
    {
        var ids = new List<string>();
        var entries = new List<QueuedJob>();
        foreach (var spec in specs)
        {
            // Queued as one batch below, so that a sweep's compatible jobs can be packed into one fused array.
            var submission = new JobSubmission(JobSpecJson.Write(spec), Environment.UserName, DeferEnqueue: true, SubmissionId: Guid.NewGuid().ToString("n"));
            string id;
            IJobGrain grain;
            JobInfo info;
            for (int attempt = 1; ; attempt++)
            {
                id = NewJobId(spec.Name);
                grain = grains.GetGrain<IJobGrain>(id);
                // Submit is idempotent per submission, so a retry after a lost reply cannot make a second job; an id
                // another submission drew already is refused, and this one draws again.
                try
                {
                    info = await grain.Submit(submission).WaitAsync(ct);
                    break;
                }
                catch (JobIdTakenException) when (attempt < 5) { }
            }
            if (await grain.GetQueueEntry() is { } entry) entries.Add(entry);
            AnsiConsole.MarkupLine($"submitted [bold]{Markup.Escape(info.JobId)}[/] ({Markup.Escape(info.Model)})");
            ids.Add(id);
        }
        await grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).EnqueueMany(entries).WaitAsync(ct);
        return ids;
    }
}
