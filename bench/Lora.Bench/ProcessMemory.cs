namespace Lora.Bench;

/// <summary>Memory figures of this process from /proc/self/status (Linux), in MiB.</summary>
internal static class ProcessMemory
{
    public static double Read(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
        }

        return double.NaN;
    }

    /// <summary>Peak resident set (VmHWM), current anonymous memory (RssAnon) and file-backed pages (RssFile).</summary>
    public static string Snapshot() =>
        $"VmHWM {Read("VmHWM"):F0} MiB, RssAnon {Read("RssAnon"):F0} MiB, RssFile {Read("RssFile"):F0} MiB";
}
