using System.Globalization;
using System.Net;
using System.Text;

namespace Lora.Training;

/// <summary>
/// The loss curve as a standalone SVG: train loss (solid) and eval loss (dashed, with markers) against the optimizer
/// step, with labelled axes, ticks and a legend. Written by hand (no plotting dependency).
/// </summary>
public static class LossCurveSvg
{
    private const double Width = 720, Height = 420, Left = 70, Right = 20, Top = 40, Bottom = 55;

    public static string Render(IEnumerable<TrainingLogEntry> history, string title = "Loss")
    {
        var rows = history.ToList();
        var train = rows.Where(r => r.Loss is { } l && double.IsFinite(l)).Select(r => (X: (double)r.Step, Y: r.Loss!.Value)).ToList();
        var eval = rows.Where(r => r.EvalLoss is { } l && double.IsFinite(l)).Select(r => (X: (double)r.Step, Y: r.EvalLoss!.Value)).ToList();
        var all = train.Concat(eval).ToList();
        var inv = CultureInfo.InvariantCulture;
        var (xMin, xMax) = all.Count == 0 ? (0.0, 1.0) : (Math.Min(0, all.Min(p => p.X)), all.Max(p => p.X));
        var (yMin, yMax) = all.Count == 0 ? (0.0, 1.0) : (all.Min(p => p.Y), all.Max(p => p.Y));
        if (xMax <= xMin)
            xMax = xMin + 1;
        var pad = Math.Max((yMax - yMin) * 0.05, 1e-3);
        (yMin, yMax) = (yMin - pad, yMax + pad);
        double Px(double x) => Left + (x - xMin) / (xMax - xMin) * (Width - Left - Right);
        double Py(double y) => Top + (yMax - y) / (yMax - yMin) * (Height - Top - Bottom);
        string F(double v) => v.ToString("0.##", inv);

        var svg = new StringBuilder();
        svg.Append(inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        svg.Append(inv, $"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>\n");
        svg.Append(inv, $"<text x=\"{Width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{WebUtility.HtmlEncode(title)}</text>\n");

        // Axes, ticks and grid.
        svg.Append(inv, $"<line x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{Width - Right}\" y2=\"{Height - Bottom}\" stroke=\"black\"/>\n");
        svg.Append(inv, $"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Height - Bottom}\" stroke=\"black\"/>\n");
        for (var i = 0; i <= 5; i++)
        {
            var x = xMin + (xMax - xMin) * i / 5;
            var y = yMin + (yMax - yMin) * i / 5;
            svg.Append(inv, $"<line x1=\"{F(Px(x))}\" y1=\"{Height - Bottom}\" x2=\"{F(Px(x))}\" y2=\"{Height - Bottom + 5}\" stroke=\"black\"/>");
            svg.Append(inv, $"<text x=\"{F(Px(x))}\" y=\"{Height - Bottom + 18}\" text-anchor=\"middle\">{Math.Round(x).ToString(inv)}</text>\n");
            svg.Append(inv, $"<line x1=\"{Left - 5}\" y1=\"{F(Py(y))}\" x2=\"{Width - Right}\" y2=\"{F(Py(y))}\" stroke=\"#ddd\"/>");
            svg.Append(inv, $"<text x=\"{Left - 8}\" y=\"{F(Py(y) + 4)}\" text-anchor=\"end\">{y.ToString("0.###", inv)}</text>\n");
        }

        svg.Append(inv, $"<text x=\"{(Left + Width - Right) / 2}\" y=\"{Height - 12}\" text-anchor=\"middle\">step</text>\n");
        svg.Append(inv, $"<text x=\"18\" y=\"{(Top + Height - Bottom) / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {(Top + Height - Bottom) / 2})\">loss</text>\n");

        string Points(IEnumerable<(double X, double Y)> ps) => string.Join(" ", ps.Select(p => $"{F(Px(p.X))},{F(Py(p.Y))}"));
        if (train.Count > 0)
            svg.Append(inv, $"<polyline id=\"train-loss\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{Points(train)}\"/>\n");
        if (eval.Count > 0)
        {
            svg.Append(inv, $"<polyline id=\"eval-loss\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"6 4\" points=\"{Points(eval)}\"/>\n");
            foreach (var p in eval)
                svg.Append(inv, $"<circle cx=\"{F(Px(p.X))}\" cy=\"{F(Py(p.Y))}\" r=\"3\" fill=\"#d62728\"/>");
            svg.Append('\n');
        }

        // Legend.
        var lx = Width - Right - 130;
        svg.Append(inv, $"<line x1=\"{lx}\" y1=\"{Top + 8}\" x2=\"{lx + 24}\" y2=\"{Top + 8}\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"{lx + 30}\" y=\"{Top + 12}\">train loss</text>\n");
        if (eval.Count > 0)
            svg.Append(inv, $"<line x1=\"{lx}\" y1=\"{Top + 26}\" x2=\"{lx + 24}\" y2=\"{Top + 26}\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/><text x=\"{lx + 30}\" y=\"{Top + 30}\">eval loss</text>\n");
        svg.Append("</svg>\n");
        return svg.ToString();
    }
}
