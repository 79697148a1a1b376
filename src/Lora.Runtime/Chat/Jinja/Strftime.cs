using System.Globalization;
using System.Text;

namespace Lora.Chat.Jinja;

/// <summary>Python's <c>datetime.strftime</c> directives (C locale) for transformers' <c>strftime_now(format)</c>.</summary>
internal static class Strftime
{
    public static string Format(DateTime t, string format)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }

            var c = format[++i];
            sb.Append(c switch
            {
                'Y' => t.Year.ToString("0000", inv),
                'y' => (t.Year % 100).ToString("00", inv),
                'm' => t.Month.ToString("00", inv),
                'd' => t.Day.ToString("00", inv),
                '-' when i + 1 < format.Length && format[i + 1] == 'd' => Skip(ref i, t.Day.ToString(inv)),
                'H' => t.Hour.ToString("00", inv),
                'I' => ((t.Hour + 11) % 12 + 1).ToString("00", inv),
                'M' => t.Minute.ToString("00", inv),
                'S' => t.Second.ToString("00", inv),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'b' => t.ToString("MMM", inv),
                'B' => t.ToString("MMMM", inv),
                'a' => t.ToString("ddd", inv),
                'A' => t.ToString("dddd", inv),
                'j' => t.DayOfYear.ToString("000", inv),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", inv),
                '%' => "%",
                _ => "%" + c,
            });
        }

        return sb.ToString();
    }

    private static string Skip(ref int i, string value)
    {
        i++;
        return value;
    }
}
