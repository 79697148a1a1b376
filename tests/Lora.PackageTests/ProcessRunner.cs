using System.Diagnostics;
using System.Text;

namespace Lora.PackageTests;

/// <summary>What a child process did: its command line, exit code and interleaved stdout+stderr.</summary>
public sealed record ProcessResult(string Command, int ExitCode, string Output, TimeSpan Elapsed)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>For assertion messages: the command, how it ended, and everything it printed.</summary>
    public override string ToString() =>
        $"`{Command}` exited with {ExitCode} after {Elapsed.TotalSeconds:F1} s. Output:{Environment.NewLine}{Output}";
}

/// <summary>Runs the same <c>dotnet</c> as the test host, time-boxed, with the build servers off.</summary>
public static class ProcessRunner
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    /// <summary>Variables that <c>dotnet test</c>'s MSBuild leaves in our environment and that would pin a child
    /// build to this build's MSBuild state rather than letting its SDK resolve itself.</summary>
    private static readonly string[] InheritedBuildVariables =
    [
        "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly",
        "MSBUILDNOINPROCNODE", "_MSBUILDTLENABLED", LibTorchVariable,
    ];

    public const string LibTorchVariable = "LORA_LIBTORCH";

    /// <summary>The dotnet executable: the one running the tests (DOTNET_HOST_PATH, or this process when it is the
    /// dotnet host), else <c>dotnet</c> from PATH.</summary>
    public static string DotNetHost { get; } = FindDotNetHost();

    public static ProcessResult DotNet(string workingDirectory, IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null) =>
        Run(DotNetHost, workingDirectory, arguments, environment, timeout);

    public static ProcessResult Run(string fileName, string workingDirectory, IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var name in InheritedBuildVariables)
            start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        // No build node or compiler server may outlive the command: they would hold our pipes open, and leak.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["UseSharedCompilation"] = "false";
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
                start.Environment.Remove(name);
            else
                start.Environment[name] = value;
        }

        var command = fileName + " " + string.Join(' ', start.ArgumentList.Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a));
        var output = new StringBuilder();
        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {command}");
        process.StandardInput.Close();
        var pumps = new[] { Pump(process.StandardOutput, output), Pump(process.StandardError, output) };
        var limit = timeout ?? DefaultTimeout;
        if (!process.WaitForExit(limit))
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // It ended just now.
            }

            Task.WaitAll(pumps, TimeSpan.FromSeconds(10));
            throw new TimeoutException($"`{command}` did not finish within {limit.TotalMinutes:F0} min and was killed. Output so far:{Environment.NewLine}{Snapshot(output)}");
        }

        // A stray grandchild could keep the pipes open; what was printed until then is enough.
        Task.WaitAll(pumps, TimeSpan.FromSeconds(30));
        return new ProcessResult(command, process.ExitCode, Snapshot(output), stopwatch.Elapsed);
    }

    private static async Task Pump(StreamReader reader, StringBuilder output)
    {
        while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
        {
            lock (output)
                output.AppendLine(line);
        }
    }

    private static string Snapshot(StringBuilder output)
    {
        lock (output)
            return output.ToString();
    }

    private static string FindDotNetHost()
    {
        var hostPath = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(hostPath) && File.Exists(hostPath))
            return hostPath;
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
            return self;
        return "dotnet";
    }
}
