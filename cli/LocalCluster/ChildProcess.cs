using System.Collections.Concurrent;
using System.Diagnostics;

namespace Orchestrator.Cli.LocalCluster;

/// <summary>
/// A child process (silo, worker, CLI run, redis-server) whose output is kept in memory, to wait for a line and to
/// report its last lines, and with a log folder also written to NAME.log as it comes.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    readonly Process _process;
    readonly ConcurrentQueue<string> _lines = new();
    readonly StreamWriter? _log;

    public string Name { get; }

    ChildProcess(string name, Process process, StreamWriter? log)
    {
        (Name, _process, _log) = (name, process, log);
        _process.OutputDataReceived += (_, e) => Keep(e.Data);
        _process.ErrorDataReceived += (_, e) => Keep(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    void Keep(string? line)
    {
        if (line is null) return;
        _lines.Enqueue(line);
        if (_log is not null) lock (_log) _log.WriteLine(line);
    }

    /// <summary>Starts <paramref name="fileName"/>; the cluster's own address variables are not passed on, so that a
    /// child reaches only the cluster its arguments name.</summary>
    public static ChildProcess Start(string name, string fileName, IEnumerable<string> args, string? logFolder = null)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["DOTNET_gcServer"] = "0";
        info.Environment.Remove("ORCH_REDIS");
        info.Environment.Remove("ORCH_GATEWAY");
        Process process;
        try { process = Process.Start(info) ?? throw new CliException($"could not start {fileName}"); }
        catch (System.ComponentModel.Win32Exception e) { throw new CliException($"could not start {fileName}: {e.Message}"); }
        var log = logFolder is null ? null : new StreamWriter(Path.Combine(logFolder, $"{name}.log")) { AutoFlush = true };
        return new ChildProcess(name, process, log);
    }

    public static ChildProcess Start(string name, string fileName, params string[] args) => Start(name, fileName, (IEnumerable<string>)args);

    public static ChildProcess Dotnet(string name, string dll, params string[] args) => Start(name, "dotnet", [dll, .. args]);

    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    public string Output => string.Join('\n', _lines);

    public async Task WaitForLine(Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_lines.Any(match)) return;
            if (_process.HasExited) throw new CliException($"{Name} exited with {_process.ExitCode} before the expected output:\n{Output}");
            await Task.Delay(100);
        }
        throw new TimeoutException($"{Name}: expected output did not appear within {timeout}:\n{Output}");
    }

    public async Task<int> WaitForExit(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { throw new TimeoutException($"{Name} did not exit within {timeout}:\n{Output}"); }
        _process.WaitForExit(); // flush redirected output
        return _process.ExitCode;
    }

    /// <summary>SIGKILL to the process and its children: no graceful shutdown, as a crash.</summary>
    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit(5000);
    }

    /// <summary>SIGSTOP / SIGCONT: the process freezes (a hung worker, a stalled Redis) and later thaws.</summary>
    public void Freeze() => Signal("STOP");
    public void Thaw() => Signal("CONT");

    /// <summary>SIGTERM: asks the process to shut down, as an orchestrator stopping it would.</summary>
    public void Terminate() => Signal("TERM");

    void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process.Id.ToString()]) ?? throw new CliException("could not run kill");
        kill.WaitForExit();
        if (kill.ExitCode != 0) throw new CliException($"kill -{signal} {_process.Id} failed");
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) Thaw(); } catch (Exception) { /* it may have exited meanwhile */ }
        try { Kill(); } catch (InvalidOperationException) { /* never started or already reaped */ }
        _process.Dispose();
        if (_log is not null) lock (_log) _log.Dispose();
    }
}
