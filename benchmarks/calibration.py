"""Sizing-curve calibration: model PL peak vs the published CsPbBr3 size -> PL table.

Prints, for every table row, the model's PL peak at the row's representative edge length (the
middle of its size range) and its residual against the published range widened by 2 nm (the
acceptance bound, also asserted in tests/test_sizing_curve.py). For rows given as a size range,
it also prints the model's PL at both ends of that range, for information.

    python benchmarks/calibration.py
"""

from __future__ import annotations

from models.optics import fit_sizing_curve, load_sizing_table, sizing_curve


def main() -> None:
    rows = load_sizing_table("CsPbBr3")
    refit = fit_sizing_curve(rows)
    print(
        f"sizing curve E1(L) = {sizing_curve.e_inf_ev:.4f} eV + "
        f"{sizing_curve.a_ev_nm2:.3f} eV nm^2 / (L + {sizing_curve.delta_nm:.3f} nm)^2"
    )
    print(f"refit from the table: {refit}")
    print()
    header = (
        f"{'edge nm':>9} {'published PL nm':>16} {'model PL nm':>12} {'residual nm':>12} "
        f"{'outside +-2 nm':>15}   PL at range ends"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for row in rows:
        pl = float(sizing_curve.pl_nm(row.size_nm))
        residual = pl - row.pl_nm
        outside = max(0.0, row.pl_min_nm - 2.0 - pl, pl - row.pl_max_nm - 2.0)
        worst = max(worst, outside)
        ends = ""
        if row.size_max_nm > row.size_min_nm:
            lo, hi = sizing_curve.pl_nm([row.size_min_nm, row.size_max_nm])
            ends = f"{row.size_min_nm:g} nm: {lo:.1f}, {row.size_max_nm:g} nm: {hi:.1f}"
        published = f"{row.pl_min_nm:g}-{row.pl_max_nm:g}"
        print(
            f"{row.size_nm:>9.2f} {published:>16} {pl:>12.2f} {residual:>+12.2f} "
            f"{outside:>15.2f}   {ends}"
        )
    rms = sum((float(sizing_curve.pl_nm(r.size_nm)) - r.pl_nm) ** 2 for r in rows) / len(rows)
    print()
    print(f"rms residual to range middles: {rms**0.5:.2f} nm")
    print(f"worst excursion beyond the +-2 nm widened range: {worst:.2f} nm (target 0)")


if __name__ == "__main__":
    main()
