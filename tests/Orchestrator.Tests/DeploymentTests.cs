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
        var ports = ((YamlSequenceNode)((YamlMappingNode)services["silo1"])["ports"]).Children.Cast<YamlMappingNode>()
            .Select(p => (p["published"].ToString(), p["target"].ToString())).ToList();
        Assert.Contains(("30000", "30000"), ports); // the gateway, for orch on the host
        Assert.Contains(("8080", "8080"), ports); // the pages and the Orleans dashboard
        var silo1 = ((YamlSequenceNode)((YamlMappingNode)services["silo1"])["command"]).Children.Select(c => c.ToString()).ToList();
        Assert.Equal("8080", silo1[silo1.IndexOf("--http-port") + 1]);
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

        var templates = Directory.GetFiles(Path.Combine(chart, "templates")).ToDictionary(f => Path.GetFileName(f), File.ReadAllText);
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
        Assert.Contains("kind: {{ .Values.worker.kind }}", templates["worker.yaml"]); // a DaemonSet on GPU nodes, or a Deployment
        Assert.Contains("nvidia.com/gpu", templates["worker.yaml"]);
        foreach (var probe in new[] { "path: /healthz", "path: /readyz" })
        {
            Assert.Contains(probe, templates["silo.yaml"]);
            Assert.Contains(probe, templates["worker.yaml"]);
        }
        Assert.Contains("-dashboard", templates["silo.yaml"]);
        foreach (var (template, program) in new[] { ("silo.yaml", "silo/Program.cs"), ("worker.yaml", "worker/Program.cs") })
        {
            var options = File.ReadAllText(Path.Combine(Repo.Root, program));
            var flags = System.Text.RegularExpressions.Regex.Matches(templates[template], @"- (--[a-z-]+)").Select(m => m.Groups[1].Value).Distinct().ToList();
            Assert.NotEmpty(flags);
            Assert.All(flags, flag => Assert.Contains($"\"{flag}\"", options));
        }
    }

    /// <summary>
    /// values.yaml satisfies values.schema.json (the schema Helm checks values against on install), and the schema
    /// rejects what it should: an unknown worker kind, a port out of range, a misspelt key. The check covers the
    /// keywords the schema uses (type, required, additionalProperties, enum, minimum/maximum, minLength, pattern).
    /// </summary>
    [Fact]
    public void TheChartsValues_SatisfyItsSchema_WhichRejectsBadValues()
    {
        var chart = Path.Combine(Repo.Root, "charts", "orchestrator");
        var schema = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(chart, "values.schema.json"))).RootElement;
        var values = Load(Path.Combine(chart, "values.yaml"));
        Assert.Empty(SchemaErrors(schema, values, "values"));

        YamlMappingNode Changed(string section, string key, YamlNode value)
        {
            var copy = Load(Path.Combine(chart, "values.yaml"));
            ((YamlMappingNode)copy[section]).Children[new YamlScalarNode(key)] = value;
            return copy;
        }
        Assert.Contains(SchemaErrors(schema, Changed("worker", "kind", new YamlScalarNode("StatefulSet")), "values"), e => e.Contains("values.worker.kind"));
        Assert.Contains(SchemaErrors(schema, Changed("silo", "httpPort", new YamlScalarNode("70000")), "values"), e => e.Contains("values.silo.httpPort"));
        Assert.Contains(SchemaErrors(schema, Changed("silo", "replica", new YamlScalarNode("2")), "values"), e => e.Contains("values.silo.replica"));
        Assert.Contains(SchemaErrors(schema, Changed("worker", "devices", new YamlScalarNode("gpu:2")), "values"), e => e.Contains("values.worker.devices"));
    }

    static List<string> SchemaErrors(System.Text.Json.JsonElement schema, YamlNode node, string path)
    {
        var errors = new List<string>();
        var scalar = (node as YamlScalarNode)?.Value ?? "";
        bool quoted = node is YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.DoubleQuoted or YamlDotNet.Core.ScalarStyle.SingleQuoted };
        double number = double.NaN;
        var isNumber = !quoted && double.TryParse(scalar, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out number);
        if (schema.TryGetProperty("type", out var type))
        {
            var ok = type.GetString() switch
            {
                "object" => node is YamlMappingNode,
                "string" => node is YamlScalarNode,
                "integer" => isNumber && number == Math.Floor(number),
                "number" => isNumber,
                "boolean" => !quoted && scalar is "true" or "false",
                _ => false,
            };
            if (!ok) return [$"{path}: '{scalar}' is not {type.GetString()}"];
        }
        if (schema.TryGetProperty("enum", out var allowed) && allowed.EnumerateArray().All(a => a.GetString() != scalar)) errors.Add($"{path}: '{scalar}' is not one of the allowed values");
        if (schema.TryGetProperty("minimum", out var min) && number < min.GetDouble()) errors.Add($"{path}: {number} is below {min}");
        if (schema.TryGetProperty("exclusiveMinimum", out var xmin) && number <= xmin.GetDouble()) errors.Add($"{path}: {number} is not above {xmin}");
        if (schema.TryGetProperty("maximum", out var max) && number > max.GetDouble()) errors.Add($"{path}: {number} is above {max}");
        if (schema.TryGetProperty("minLength", out var minLength) && scalar.Length < minLength.GetInt32()) errors.Add($"{path}: shorter than {minLength}");
        if (schema.TryGetProperty("pattern", out var pattern) && !System.Text.RegularExpressions.Regex.IsMatch(scalar, pattern.GetString()!)) errors.Add($"{path}: '{scalar}' does not match {pattern}");
        if (node is YamlMappingNode map)
        {
            var properties = schema.TryGetProperty("properties", out var p) ? p : default;
            foreach (var required in schema.TryGetProperty("required", out var r) ? r.EnumerateArray().Select(x => x.GetString()!) : [])
                if (!map.Children.ContainsKey(required)) errors.Add($"{path}.{required}: required");
            foreach (var (key, value) in map.Children)
            {
                var name = key.ToString();
                if (properties.ValueKind == System.Text.Json.JsonValueKind.Object && properties.TryGetProperty(name, out var child)) errors.AddRange(SchemaErrors(child, value, $"{path}.{name}"));
                else if (schema.TryGetProperty("additionalProperties", out var extra))
                {
                    if (extra.ValueKind == System.Text.Json.JsonValueKind.False) errors.Add($"{path}.{name}: not allowed by the schema");
                    else if (extra.ValueKind == System.Text.Json.JsonValueKind.Object) errors.AddRange(SchemaErrors(extra, value, $"{path}.{name}"));
                }
            }
        }
        return errors;
    }

    /// <summary>
    /// Helm's Redis had AOF but no volume (a restart erased every job, checkpoint reference, incident and the
    /// membership table), and checkpoints had no store outside the control plane. The chart now gives Redis a volume
    /// and every worker the shared checkpoint volume at the directory it passes as --checkpoint-dir; so does compose.
    /// </summary>
    [Fact]
    public async Task RedisAndTheCheckpointStore_LiveOnVolumes_InTheChartAndInCompose()
    {
        var templates = Path.Combine(Repo.Root, "charts", "orchestrator", "templates");
        var redis = File.ReadAllText(Path.Combine(templates, "redis.yaml"));
        Assert.Contains("\"--appendonly\", \"yes\"", redis);
        Assert.Contains("mountPath: /data", redis);
        Assert.Contains("kind: PersistentVolumeClaim", redis);
        Assert.Contains("claimName: {{ .Release.Name }}-redis-data", redis);
        var worker = File.ReadAllText(Path.Combine(templates, "worker.yaml"));
        Assert.Matches(@"- --checkpoint-dir\s+- /checkpoints", worker);
        Assert.Contains("mountPath: /checkpoints", worker);
        Assert.Contains("accessModes: [ReadWriteMany]", File.ReadAllText(Path.Combine(templates, "checkpoints.yaml")));

        using var compose = ChildProcess.Start("docker-compose", "docker-compose", "-f", Path.Combine(Repo.Root, "docker-compose.yml"), "config");
        Assert.Equal(0, await compose.WaitForExit(TimeSpan.FromSeconds(60)));
        var yaml = new YamlStream();
        yaml.Load(new StringReader(compose.Output));
        var services = (YamlMappingNode)((YamlMappingNode)yaml.Documents[0].RootNode)["services"];
        foreach (var name in new[] { "worker1", "worker2" })
        {
            var service = (YamlMappingNode)services[name];
            var command = ((YamlSequenceNode)service["command"]).Children.Select(c => c.ToString()).ToList();
            var dir = command[command.IndexOf("--checkpoint-dir") + 1];
            Assert.Contains(Volumes(service), v => v == ("checkpoints", dir));
        }
        Assert.Contains(Volumes((YamlMappingNode)services["redis"]), v => v == ("redis-data", "/data"));
    }

    /// <summary>A service's volumes as (source, target), from either syntax `docker-compose config` prints.</summary>
    static IEnumerable<(string Source, string Target)> Volumes(YamlMappingNode service) =>
        ((YamlSequenceNode)service["volumes"]).Children.Select(v => v is YamlMappingNode m
            ? (m["source"].ToString(), m["target"].ToString())
            : (v.ToString().Split(':')[0], v.ToString().Split(':')[1]));

    /// <summary>The images could not start (their base lacked ASP.NET Core, which the silo's pages, the worker's probes
    /// and the CLI's embedded silo need) and ran as root.</summary>
    [Theory]
    [InlineData("silo/Dockerfile")]
    [InlineData("worker/Dockerfile")]
    [InlineData("cli/Dockerfile")]
    public void EveryImage_RunsOnTheAspNetCoreRuntime_AsAnUnprivilegedUser(string dockerfile)
    {
        var lines = File.ReadAllLines(Path.Combine(Repo.Root, dockerfile)).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var final = lines.FindLastIndex(l => l.StartsWith("FROM "));
        Assert.StartsWith("FROM mcr.microsoft.com/dotnet/aspnet:10.0", lines[final]);
        var stage = lines[final..];
        var user = stage.FindLastIndex(l => l.StartsWith("USER "));
        Assert.True(user >= 0, $"{dockerfile}: the image runs as root");
        Assert.DoesNotMatch(@"^USER\s+(root|0)(:|$)", stage[user]);
        Assert.True(user > stage.FindLastIndex(l => l.StartsWith("RUN ")), $"{dockerfile}: USER must come after the last RUN (apt-get needs root, the program does not)");
        Assert.StartsWith("ENTRYPOINT", stage[^1]);
    }

    /// <summary>dotnet publish copied TorchSharp's library from the NuGet cache again, without the GLIBCXX fix that
    /// Directory.Build.targets applies to bin/: a published worker could not load libtorch on Debian 12.</summary>
    [Fact]
    public async Task APublishedWorker_CarriesThePatchedTorchSharpLibrary()
    {
        var output = Directory.CreateTempSubdirectory("publish").FullName;
        using var publish = ChildProcess.Start("publish", "dotnet", "publish", Path.Combine(Repo.Root, "worker", "Orchestrator.Worker.csproj"),
            "-c", Repo.Configuration, "--no-build", "-o", output, "-nologo");
        Assert.Equal(0, await publish.WaitForExit(TimeSpan.FromMinutes(3)));
        var library = Path.Combine(output, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        using var readelf = ChildProcess.Start("readelf", "readelf", "-V", library);
        Assert.Equal(0, await readelf.WaitForExit(TimeSpan.FromSeconds(30)));
        var need = readelf.Output.Split('\n').Single(l => l.Contains("Name: GLIBCXX_3.4.32"));
        Assert.Contains("Flags: WEAK", need);
    }

    static YamlMappingNode Load(string path)
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(path)));
        return (YamlMappingNode)yaml.Documents[0].RootNode;
    }
}
