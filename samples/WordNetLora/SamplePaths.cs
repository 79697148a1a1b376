using System.Reflection;

namespace WordNetLora;

/// <summary>Where the embedded default lives: paths relative to the repository root, found from the sample's
/// project directory (recorded at build time), so the program runs from any working directory.</summary>
public static class SamplePaths
{
    /// <summary>The repository root (two levels above samples/WordNetLora).</summary>
    public static string RepositoryRoot { get; } = Path.GetFullPath(Path.Combine(
        typeof(SamplePaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "SampleDirectory").Value!, "..", ".."));

    public static string DefaultModel => Path.Combine(RepositoryRoot, "samples", "models", "wordnet-llama");

    public static string DataDirectory => Path.Combine(RepositoryRoot, "samples", "data", "wordnet");

    public static string DefaultTrainData => Path.Combine(DataDirectory, "train.json");

    public static string DefaultEvalData => Path.Combine(DataDirectory, "heldout.json");

    public static string DefaultOutput => Path.Combine("out", "wordnet-lora");

    /// <summary><paramref name="path"/> relative to the repository root when it is inside it, else absolute, with
    /// forward slashes (the form results.json records).</summary>
    public static string ForResults(string path)
    {
        var full = Path.GetFullPath(path);
        var relative = Path.GetRelativePath(RepositoryRoot, full);
        var inside = !relative.StartsWith("..", StringComparison.Ordinal) && !Path.IsPathRooted(relative);
        return (inside ? relative : full).Replace(Path.DirectorySeparatorChar, '/');
    }
}
