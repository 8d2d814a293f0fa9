from tinyzoo.cli import main

main()
