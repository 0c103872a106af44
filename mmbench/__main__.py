from mmbench.cli import main

main()
