using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Orchestrator.Tests;

/// <summary>
/// The silos' web hosts against a live cluster of real processes: a job trains, a chaos fault kills its worker,
/// and the pages (in headless Chromium), the JSON API, /metrics, the health probes and `orch reliability` all
/// show the job, its curve, the incident and the job's ETTR as computed here from the job's own time line.
/// Screenshots of every page go to artifacts/screenshots.
/// </summary>
[Collection("processes")]
public sealed class WebProcessTests(ITestOutputHelper output) : ProcessClusterTest(output)
{
    const int CheckpointEvery = 300;
    static readonly string Screenshots = Path.Combine(Repo.Root, "artifacts", "screenshots");
    readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public override async Task DisposeAsync()
    {
        _http.Dispose();
        await base.DisposeAsync();
    }

    [Fact]
    public async Task PagesApiMetricsAndReliability_ShowALiveJobItsCurveAndAKilledWorker()
    {
        var (web1, web2) = (ProcessCluster.FreePort(), ProcessCluster.FreePort());
        await Cluster.StartSilo("--http-port", web1.ToString(), "--allow-chaos");
        await Cluster.StartSilo("--http-port", web2.ToString(), "--allow-chaos");
        var workerWeb = ProcessCluster.FreePort();
        Cluster.StartWorker("w1", extra: ["--http-port", workerWeb.ToString(), "--allow-chaos"]);
        Cluster.StartWorker("w2", extra: ["--allow-chaos"]);
        await Cluster.ConnectClient();
        var site = $"http://127.0.0.1:{web1}/";
        foreach (var port in new[] { web1, web2 })
        {
            Assert.Equal("ok", await _http.GetStringAsync($"http://127.0.0.1:{port}/healthz"));
            Assert.Equal("ready", await _http.GetStringAsync($"http://127.0.0.1:{port}/readyz"));
        }
        // The worker's probes: alive once its process serves, ready once the cluster answers its heartbeats.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        async Task<HttpResponseMessage?> Probe(string path)
        {
            try { return await _http.GetAsync($"http://127.0.0.1:{workerWeb}{path}"); }
            catch (HttpRequestException) { return null; } // not listening yet
        }
        HttpResponseMessage? alive, ready = null;
        while ((alive = await Probe("/healthz")) is null && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal("ok", await alive!.Content.ReadAsStringAsync());
        while ((ready = await Probe("/readyz"))?.StatusCode != System.Net.HttpStatusCode.OK && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal("ready", await ready!.Content.ReadAsStringAsync());
        var id = await Cluster.SubmitWithCli($"""
            name: web
            owner: alice
            model: {"{"}type: mlp, hidden: [256, 128]{"}"}
            data: {"{"}dataset: fashion-mnist{"}"}
            train: {"{"}epochs: 6, batchSize: 64, lr: 0.05, checkpointEvery: {CheckpointEvery}{"}"}
            """);
        var running = await Cluster.WaitFor(id, j => j.CheckpointStep >= CheckpointEvery,
            "checkpointed", TimeSpan.FromSeconds(120));

        // While it runs: the jobs, job, nodes and arrays pages show it.
        var jobs = await Page(site, "jobs", "jobs");
        Assert.Contains($"data-job=\"{id}\"", jobs);
        Assert.Contains("alice", jobs);
        var arrays = await Page(site, "arrays", "arrays");
        Assert.Contains(running.Assignment!.ArrayId, arrays);
        var nodes = await Page(site, "nodes", "nodes");
        Assert.Contains("w1", nodes);
        Assert.Contains("w2", nodes);
        Assert.Contains(id, nodes);
        AssertCurve(await Page(site, $"job/{id}", "job-running"), "loss");

        // A chaos fault kills the job's worker; the other node takes the job over from its checkpoint.
        // Six epochs leave it thousands of steps to go after the eight Chromium runs above, even on a fast machine.
        var beforeKill = await Cluster.Grains.GetGrain<IJobGrain>(id).GetInfo();
        Assert.True(beforeKill.State == JobState.Running, $"the job must still run when its worker is killed, but it is {beforeKill.State}");
        var victim = running.Assignment.NodeId;
        var chaos = Cluster.Track(ChildProcess.Dotnet("orch-chaos", Repo.Cli, "chaos", "kill-worker", victim, "--redis", Cluster.Redis));
        Assert.Equal(0, await chaos.WaitForExit(TimeSpan.FromSeconds(60)));
        var done = await Cluster.WaitFor(id, j => j.State == JobState.Succeeded, "succeeded", TimeSpan.FromSeconds(240));
        Assert.Equal(1, done.Recoveries);

        // The job's ETTR, computed here from its own time line, is what the API and the reliability page report.
        var detail = JsonDocument.Parse(await _http.GetStringAsync($"{site}api/jobs/{id}")).RootElement;
        var check = EttrCheck.FromMarks(detail.GetProperty("history").GetProperty("marks"));
        var ettr = check.AssertMatches(detail.GetProperty("info").GetProperty("time"), id);
        Assert.True(check.Detection > 0, "the killed worker's silence is detection time");
        var lostSteps = check.LostSteps;
        Assert.InRange(ettr, 0.05, 0.99);
        // Events carry their kind and fields beside the message rendered from them.
        var nodeLost = Assert.Single(detail.GetProperty("events").EnumerateArray(), e => e.GetProperty("kind").GetString() == "NodeLost");
        Assert.Equal(victim, nodeLost.GetProperty("node").GetString());
        Assert.Equal("scheduler", nodeLost.GetProperty("source").GetString());
        Assert.StartsWith($"lost its node: node {victim}", nodeLost.GetProperty("message").GetString());
        var reliability = JsonDocument.Parse(await _http.GetStringAsync($"http://127.0.0.1:{web2}/api/reliability")).RootElement;
        var listed = reliability.GetProperty("jobs").EnumerateArray().Single(j => j.GetProperty("jobId").GetString() == id);
        Assert.Equal(ettr, listed.GetProperty("time").GetProperty("ettr").GetDouble(), 9);
        Assert.True(reliability.GetProperty("failures").GetInt32() >= 1);

        // The incident, with its category and timings, on the API, the incidents page and the job page.
        var incidents = JsonDocument.Parse(await _http.GetStringAsync($"{site}api/incidents")).RootElement.EnumerateArray()
            .Where(v => v.GetProperty("incident").GetProperty("jobs").EnumerateArray().Any(j => j.GetString() == id)).ToList();
        var lost = Assert.Single(incidents, v => v.GetProperty("incident").GetProperty("category").GetString() == "NodeLost");
        Assert.Equal(victim, lost.GetProperty("incident").GetProperty("nodeId").GetString());
        var impact = lost.GetProperty("jobs").EnumerateArray().Single();
        Assert.InRange(impact.GetProperty("recoverySeconds").GetDouble(), 0.1, 120);
        Assert.Equal(lostSteps, impact.GetProperty("lostSteps").GetInt64());
        Assert.Contains("data-category=\"NodeLost\"", await Page(site, "incidents", "incidents"));
        var jobPage = await Page(site, $"job/{id}", "job");
        AssertCurve(jobPage, "loss", "test accuracy"); // accuracy: one point per epoch
        Assert.Contains("NodeLost", jobPage);
        Assert.Contains("data-kind=\"NodeLost\"", jobPage);
        Assert.Contains(ettr.ToString("F3", CultureInfo.InvariantCulture), jobPage);
        var reliabilityPage = await Page(site, "reliability", "reliability");
        Assert.Contains("failures per 1,000 node-days", reliabilityPage);
        Assert.Contains(ettr.ToString("F3", CultureInfo.InvariantCulture), reliabilityPage);
        Assert.Contains("RSC-1", reliabilityPage);
        await Page(site, "", "dashboard", path: "dashboard/", check: false);

        // orch reliability: the measured rate, the incident's category and timing, the job's ETTR, projections.
        var cli = Cluster.Track(ChildProcess.Dotnet("orch-reliability", Repo.Cli, "reliability", "--redis", Cluster.Redis, "--devices", "1024,16384,100000"));
        Assert.Equal(0, await cli.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Contains("this cluster (measured)", cli.Output);
        Assert.Contains("NodeLost", cli.Output);
        Assert.Contains($"{lost.GetProperty("incident").GetProperty("detectionSeconds").GetDouble():F1} s", cli.Output);
        output.WriteLine(cli.Output);
        var jobLine = cli.Output.Split('\n').Single(l => l.Contains(id) && l.Contains("Succeeded"));
        Assert.Contains(ettr.ToString("F3", CultureInfo.InvariantCulture), jobLine);
        Assert.Contains("100,000", cli.Output);

        // /metrics on both silos: cluster gauges agree; event histograms add up across silos.
        var scrapes = new[] { await _http.GetStringAsync($"http://127.0.0.1:{web1}/metrics"), await _http.GetStringAsync($"http://127.0.0.1:{web2}/metrics") };
        foreach (var scrape in scrapes)
        {
            Assert.Equal(1, Metric(scrape, "orch_jobs{state=\"Succeeded\"}"));
            Assert.Equal(0, Metric(scrape, "orch_queue_length"));
            Assert.True(Metric(scrape, "orch_incidents_total{category=\"NodeLost\"}") >= 1);
            Assert.Equal(1, Metric(scrape, "orch_nodes{health=\"Dead\"}"));
            Assert.InRange(Metric(scrape, "orch_ettr_ratio"), 0.05, 0.99);
        }
        // A labelled series appears only on the silo that observed it (the one hosting the job's grain).
        Assert.True(scrapes.Sum(s => Metric(s, "orch_recovery_seconds_count{category=\"NodeLost\"}", absent: 0)) >= 1);
        Assert.True(scrapes.Sum(s => Metric(s, "orch_queue_wait_seconds_count")) >= 2); // placed, and placed again
        Assert.True(scrapes.Sum(s => Metric(s, "orch_step_seconds_count")) > 10);
        Assert.True(scrapes.Sum(s => Metric(s, "orch_scheduling_latency_seconds_count")) >= 2);

        // Stored XSS: a failure reason carrying markup (here a data path, echoed by the worker that cannot find it) was
        // drawn unescaped into the incidents chart. Reflected DOM XSS: '#/constructor/<markup>' reached Object.prototype.
        const string Markup = "<img src=x onerror=\"document.body.dataset.pwned=1\">";
        var hostile = JobSpecJson.Write(JobSpecParser.Parse($"name: hostile\nmodel: {{type: mlp, hidden: [8]}}\ndata: {{dataset: fashion-mnist, path: '/nowhere/{Markup}'}}\ntrain: {{steps: 5}}",
            new SpecValidationOptions { CheckFiles = false }));
        await Cluster.Grains.GetGrain<IJobGrain>("hostile").Submit(new JobSubmission(hostile, "mallory"));
        var failed = await Cluster.WaitFor("hostile", j => j.State == JobState.Failed, "failed", TimeSpan.FromSeconds(60));
        Assert.Contains(Markup, failed.Failure!.Message);
        foreach (var (route, name) in new[] { ("incidents", "incidents-hostile"), ("job/hostile", "job-hostile"), ($"constructor/{Uri.EscapeDataString(Markup)}", "constructor") })
        {
            var dom = await Page(site, route, name);
            Assert.DoesNotContain("data-pwned", dom);
            Assert.DoesNotContain("<img src=\"x\"", dom);
        }
        Assert.Contains("&lt;img src=x", await Page(site, "incidents", "incidents-hostile"));
    }

    /// <summary>The curves are drawn, each with more than one point.</summary>
    static void AssertCurve(string dom, params string[] curves)
    {
        foreach (var series in curves)
        {
            var path = Regex.Match(dom, $"data-series=\"{series}\" d=\"([^\"]+)\"");
            Assert.True(path.Success, $"no {series} curve on the job page");
            Assert.True(path.Groups[1].Value.Count(c => c == 'L') >= 1, $"the {series} curve has one point");
        }
    }

    /// <summary>
    /// Loads a page in headless Chromium (its scripts run and fetch the API), saves a screenshot, and returns the
    /// rendered DOM after checking the page rendered without an error.
    /// </summary>
    async Task<string> Page(string site, string route, string name, string? path = null, bool check = true)
    {
        var url = path is null ? $"{site}#/{route}" : site + path;
        Directory.CreateDirectory(Screenshots);
        var dom = await Chromium(url, "--dump-dom");
        await Chromium(url, $"--screenshot={Path.Combine(Screenshots, name + ".png")}", "--window-size=1400,1100");
        output.WriteLine($"{name}: {url}, {dom.Length} characters, screenshot {name}.png");
        Assert.True(File.Exists(Path.Combine(Screenshots, name + ".png")), $"no screenshot of {url}");
        if (check)
        {
            Assert.Contains("data-loaded=\"true\"", dom);
            Assert.DoesNotContain("class=\"error\"", dom);
        }
        else Assert.Contains("Orleans Dashboard", dom);
        return dom;
    }

    static async Task<string> Chromium(string url, params string[] action)
    {
        var binary = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
                     ?? throw new InvalidOperationException("chromium is not installed: run scripts/test.sh (it installs Debian's chromium package) or apt-get install -y chromium");
        var profile = Directory.CreateTempSubdirectory("chromium").FullName;
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in (string[])["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", $"--user-data-dir={profile}",
                     "--virtual-time-budget=6000", .. action, url])
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await process.WaitForExitAsync(limit.Token);
        try { Directory.Delete(profile, recursive: true); } catch (IOException) { }
        return await stdout;
    }

    static double Metric(string scrape, string series, double? absent = null)
    {
        var line = scrape.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        if (line is null) return absent ?? throw new Xunit.Sdk.XunitException($"/metrics has no {series}");
        return double.Parse(line[(series.Length + 1)..].Trim(), CultureInfo.InvariantCulture);
    }
}
