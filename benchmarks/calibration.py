"""Sizing-curve calibration: model PL peak vs the published size -> PL table, per material.

For CsPbBr3, CsPbI3 and FAPbBr3 prints, for every table row, the model's PL peak at the row's
representative edge length (the middle of its size range) and its residual against the published
range widened by 2 nm (the acceptance bound, also asserted in tests/test_sizing_curve.py). For
rows given as a size range, it also prints the model's PL at both ends of that range, for
information.

    python benchmarks/calibration.py
"""

from __future__ import annotations

from models.optics import MATERIALS, fit_sizing_curve, load_sizing_table


def main() -> None:
    worst = 0.0
    for name, material in MATERIALS.items():
        rows = load_sizing_table(name)
        curve = material.sizing
        refit = fit_sizing_curve(rows, interpolate=curve.knots is not None)
        print(
            f"{name} (Bohr diameter {material.bohr_diameter_nm:g} nm): E1(L) = "
            f"{curve.e_inf_ev:.4f} eV + {curve.a_ev_nm2:.3f} eV nm^2 / "
            f"(L + {curve.delta_nm:.3f} nm)^2"
            + ("; interpolates its rows inside the table" if curve.knots else "")
        )
        print(
            f"refit from the table: E_inf {refit.e_inf_ev:.4f} eV, A {refit.a_ev_nm2:.3f}, "
            f"delta {refit.delta_nm:.3f} nm; bulk-like (100 nm) PL "
            f"{float(curve.pl_nm(100.0)):.0f} nm"
        )
        header = (
            f"{'edge nm':>9} {'published PL nm':>16} {'model PL nm':>12} {'residual nm':>12} "
            f"{'outside +-2 nm':>15}   PL at range ends"
        )
        print(header)
        print("-" * len(header))
        for row in rows:
            pl = float(curve.pl_nm(row.size_nm))
            outside = max(0.0, row.pl_min_nm - 2.0 - pl, pl - row.pl_max_nm - 2.0)
            worst = max(worst, outside)
            ends = ""
            if row.size_max_nm > row.size_min_nm:
                lo, hi = curve.pl_nm([row.size_min_nm, row.size_max_nm])
                ends = f"{row.size_min_nm:g} nm: {lo:.1f}, {row.size_max_nm:g} nm: {hi:.1f}"
            published = f"{row.pl_min_nm:g}-{row.pl_max_nm:g}"
            print(
                f"{row.size_nm:>9.2f} {published:>16} {pl:>12.2f} {pl - row.pl_nm:>+12.2f} "
                f"{outside:>15.2f}   {ends}"
            )
        rms = sum((float(curve.pl_nm(r.size_nm)) - r.pl_nm) ** 2 for r in rows) / len(rows)
        print(f"rms residual to range middles: {rms**0.5:.2f} nm")
        print()
    print(f"worst excursion beyond the +-2 nm widened ranges: {worst:.2f} nm (target 0)")


if __name__ == "__main__":
    main()
