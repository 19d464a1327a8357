using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;
using Orchestrator.Core.Specs;

namespace Orchestrator.Cli;

/// <summary>Scenario files (chaos, simulation): read through the job spec reader's limits first (size, depth, node
/// count; no anchors, aliases or tags), so that a hostile file is refused before YamlDotNet builds anything from it.</summary>
public static class ScenarioFiles
{
    public static T Load<T>(string path, string fields) where T : class
    {
        if (!File.Exists(path)) throw new UsageException($"scenario file '{path}' does not exist");
        var text = File.ReadAllText(path);
        try
        {
            SpecDocument.Parse(text);
            return new DeserializerBuilder().WithNamingConvention(CamelCaseNamingConvention.Instance).Build().Deserialize<T>(text)
                ?? throw new UsageException($"{path} is empty");
        }
        catch (SpecFormatException e)
        {
            throw new UsageException($"{Path.GetFileName(path)}: {e.Message}");
        }
        catch (YamlException e)
        {
            throw new UsageException($"{Path.GetFileName(path)}, line {e.Start.Line}: {e.InnerException?.Message ?? e.Message} (fields: {fields})");
        }
    }
}
