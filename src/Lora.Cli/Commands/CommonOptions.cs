using System.CommandLine;

namespace Lora.Cli.Commands;

/// <summary>Options shared by several commands, so they are spelled and described once.</summary>
internal static class CommonOptions
{
    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object on stdout and nothing else." };

    public static Option<string> Device() => new("--device")
    {
        Description = "auto (CUDA if available, else CPU), cpu, cuda or cuda:N.",
        DefaultValueFactory = _ => "auto",
    };
}
