namespace Lora.Runtime.Tests;

/// <summary>Paths of the reference fixtures copied next to the test assembly (tests/fixtures/**).</summary>
internal static class Fixtures
{
    public static string Root { get; } = Path.Combine(AppContext.BaseDirectory, "fixtures");

    public static string Peft(string @case, string part = "") => Path.Combine(Root, "peft", @case, part);

    /// <summary>A fresh empty directory under the system temp folder.</summary>
    public static string TempDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "lora-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
