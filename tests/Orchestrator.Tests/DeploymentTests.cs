using Orchestrator.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace Orchestrator.Tests;

/// <summary>
/// docker-compose.yml is valid for Debian's docker-compose (`config` parses, merges and checks it) and wires what the
/// README promises: Redis, two silos and two workers built from this repository's Dockerfiles, the gateway published.
/// </summary>
public class DeploymentTests
{
    [Fact]
    public async Task TheComposeFile_IsValid_AndItsServicesAreBuiltFromThisRepository()
    {
        using var compose = ChildProcess.Start("docker-compose", "docker-compose", "-f", Path.Combine(Repo.Root, "docker-compose.yml"), "config");
        Assert.Equal(0, await compose.WaitForExit(TimeSpan.FromSeconds(60)));

        var yaml = new YamlStream();
        yaml.Load(new StringReader(compose.Output));
        var services = (YamlMappingNode)((YamlMappingNode)yaml.Documents[0].RootNode)["services"];
        var names = services.Children.Keys.Select(k => k.ToString()).ToHashSet();
        Assert.Superset(new HashSet<string> { "redis", "silo1", "silo2", "worker1", "worker2", "cli" }, names);
        foreach (var name in new[] { "silo1", "silo2", "worker1", "worker2", "cli" })
        {
            var service = (YamlMappingNode)services[name];
            var dockerfile = ((YamlMappingNode)service["build"])["dockerfile"].ToString();
            var text = File.ReadAllText(Path.Combine(Repo.Root, dockerfile));
            // Each Dockerfile publishes a project that exists here and runs what it published.
            var project = text.Split('\n').Single(l => l.Contains("dotnet publish")).Split(' ').Single(w => w.EndsWith(".csproj"));
            Assert.True(File.Exists(Path.Combine(Repo.Root, project)), $"{dockerfile} publishes {project}, which does not exist");
            Assert.Contains(name.StartsWith("silo") ? "orch-silo.dll" : name.StartsWith("worker") ? "orch-worker.dll" : "orch.dll", text);
        }
        var port = (YamlMappingNode)((YamlSequenceNode)((YamlMappingNode)services["silo1"])["ports"]).Children.Single();
        Assert.Equal(("30000", "30000"), (port["published"].ToString(), port["target"].ToString())); // the gateway, for orch on the host
        foreach (var worker in new[] { "worker1", "worker2" })
        {
            var command = ((YamlSequenceNode)((YamlMappingNode)services[worker])["command"]).Children.Select(c => c.ToString()).ToList();
            Assert.Equal("redis:6379", command[command.IndexOf("--redis") + 1]);
            Assert.Equal(worker, command[command.IndexOf("--data-address") + 1]); // peers dial the container by name
        }
    }

    /// <summary>
    /// The Helm chart (charts/orchestrator) is consistent: its metadata parses, every value a template reads exists in
    /// values.yaml, and every flag it passes is an option of the silo or worker it starts. (No helm binary here to
    /// render it; this catches the mistakes a rename would make.)
    /// </summary>
    [Fact]
    public void TheHelmChart_ReadsOnlyValuesItDefines_AndPassesOnlyRealOptions()
    {
        var chart = Path.Combine(Repo.Root, "charts", "orchestrator");
        var meta = Load(Path.Combine(chart, "Chart.yaml"));
        Assert.Equal("orchestrator", meta["name"].ToString());
        Assert.Equal("v2", meta["apiVersion"].ToString());
        var values = Load(Path.Combine(chart, "values.yaml"));

        var templates = Directory.GetFiles(Path.Combine(chart, "templates")).ToDictionary(Path.GetFileName, File.ReadAllText);
        var read = templates.Values.SelectMany(t => System.Text.RegularExpressions.Regex.Matches(t, @"\.Values\.([A-Za-z0-9_.]+)").Select(m => m.Groups[1].Value)).Distinct().ToList();
        Assert.NotEmpty(read);
        foreach (var path in read)
        {
            YamlNode node = values;
            foreach (var key in path.Split('.'))
            {
                Assert.True(node is YamlMappingNode map && map.Children.ContainsKey(key), $"a template reads .Values.{path}, which values.yaml does not define");
                node = ((YamlMappingNode)node)[key];
            }
        }
        foreach (var (template, program) in new[] { ("silo.yaml", "silo/Program.cs"), ("worker.yaml", "worker/Program.cs") })
        {
            var options = File.ReadAllText(Path.Combine(Repo.Root, program));
            var flags = System.Text.RegularExpressions.Regex.Matches(templates[template], @"- (--[a-z-]+)").Select(m => m.Groups[1].Value).Distinct().ToList();
            Assert.NotEmpty(flags);
            Assert.All(flags, flag => Assert.Contains($"\"{flag}\"", options));
        }
    }

    static YamlMappingNode Load(string path)
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(path)));
        return (YamlMappingNode)yaml.Documents[0].RootNode;
    }
}
