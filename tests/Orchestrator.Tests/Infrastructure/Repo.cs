namespace Orchestrator.Tests.Infrastructure;

/// <summary>Paths of the repository and of the built executables the process tests start.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Orchestrator.sln"))) return dir.FullName;
        throw new InvalidOperationException("Orchestrator.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Debug or Release: whatever this test assembly was built as.</summary>
    public static string Configuration { get; } = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;

    public static string Executable(string project, string assembly) =>
        Path.Combine(Root, project, "bin", Configuration, "net10.0", assembly + ".dll");

    public static string Silo => Executable("silo", "orch-silo");
    public static string Worker => Executable("worker", "orch-worker");
    public static string Cli => Executable("cli", "orch");

    public static string FashionMnist => Orchestrator.Core.Specs.FashionMnistFiles.DefaultPath;
}
