namespace Orchestrator.Client;

/// <summary>How the read models are written as JSON, by the silo's /api and by reports: camelCase, enums by name.</summary>
public static class ApiJson
{
    public static System.Text.Json.JsonSerializerOptions Options { get; } = Configure(new(System.Text.Json.JsonSerializerDefaults.Web));

    public static System.Text.Json.JsonSerializerOptions Configure(System.Text.Json.JsonSerializerOptions options)
    {
        options.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter());
        options.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals;
        return options;
    }
}
